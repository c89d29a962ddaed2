"""Writes a checkpoint in the reference's format for the interop tests of ijepa-eval: its save_checkpoint
dictionary (encoder, predictor, target_encoder with "module." prefixes, opt, scaler, epoch, loss, batch_size,
world_size, lr) saved by torch.save after two training steps of the eager port, so that the context and target
encoders differ. Beside it, expected.json holds both encoders' outputs on a fixed input, pooled as ijepa-eval
pools them (avg: mean over tokens of the last layer; avg4: the last 4 layers, each through the final norm,
averaged and concatenated). jepa-latest-gpu.pth.tar is the same checkpoint with every tensor tagged "cuda:0",
as the reference's GPU runs save them, so that loading it on a machine without a GPU is tested.

    write_reference_checkpoint.py OUT_DIR    -> OUT_DIR/jepa-latest.pth.tar, OUT_DIR/jepa-latest-gpu.pth.tar,
                                                OUT_DIR/expected.json
"""
import json
import sys
from pathlib import Path

import torch

import ijepa_ref as ref

# A width outside the reference's size table, so the importer needs its head count (num_heads) from the caller.
MODEL = {"img_size": 48, "patch_size": 8, "in_chans": 3, "embed_dim": 64, "depth": 4, "num_heads": 4,
         "mlp_ratio": 4.0, "pred_dim": 32, "pred_depth": 1}
BATCH = 4


def fixed_input(batch):
    n = batch * MODEL["in_chans"] * MODEL["img_size"] ** 2
    shape = (batch, MODEL["in_chans"], MODEL["img_size"], MODEL["img_size"])
    return torch.sin(0.01 * torch.arange(n, dtype=torch.float64)).float().reshape(shape)


def pooled(model, x):
    h = model.patch_embed(x) + model.pos_embed
    layers = []
    for blk in model.blocks:
        h = blk(h)
        layers.append(h)
    last4 = [model.norm(t) for t in layers[-4:]]
    return {"output": last4[-1].flatten().tolist(), "avg": last4[-1].mean(1).flatten().tolist(),
            "avg4": torch.cat([t.mean(1) for t in last4], dim=1).flatten().tolist()}


def save_as_from_gpu(obj, path):
    """torch.save of `obj` with each storage's location written as "cuda:0" (the tensors stay on the CPU)."""
    # A tagger ahead of the built-in ones (cpu 10, cuda 20) names the location; it stays for the process, so
    # this is the last save.
    torch.serialization.register_package(0, lambda storage: "cuda:0", lambda storage, location: None)
    torch.save(obj, path)


def main(out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    m = MODEL
    encoder = ref.VisionTransformer(m["img_size"], m["patch_size"], m["in_chans"], m["embed_dim"], m["depth"],
                                    m["num_heads"], m["mlp_ratio"])
    grid = m["img_size"] // m["patch_size"]
    predictor = ref.Predictor(grid * grid, m["embed_dim"], m["pred_dim"], m["pred_depth"], m["num_heads"])
    trainer = ref.Trainer(encoder, predictor, ipe=2, epochs=1, warmup=0, start_lr=1e-3, lr=1e-3, final_lr=1e-6,
                          wd=0.04, final_wd=0.4)
    imgs = fixed_input(BATCH)
    collator = ref.MaskCollator(m["img_size"], m["patch_size"], min_keep=2)
    for _ in range(2):
        masks_enc, masks_pred = collator(BATCH)
        out = trainer.step(imgs, masks_enc, masks_pred)

    prefixed = lambda model: {"module." + k: v for k, v in model.state_dict().items()}
    checkpoint = {"encoder": prefixed(encoder), "predictor": prefixed(predictor),
                  "target_encoder": prefixed(trainer.target), "opt": trainer.opt.state_dict(), "scaler": None,
                  "epoch": 1, "loss": out["loss"].item(), "batch_size": BATCH, "world_size": 1, "lr": out["lr"]}
    torch.save(checkpoint, out_dir / "jepa-latest.pth.tar")
    save_as_from_gpu(checkpoint, out_dir / "jepa-latest-gpu.pth.tar")

    x = fixed_input(2)
    with torch.no_grad():
        expected = {"model": MODEL, "input": "sin(0.01*arange(2*3*48*48)) as float64 then float32, [2,3,48,48]",
                    "encoder": pooled(encoder, x), "target_encoder": pooled(trainer.target, x)}
    (out_dir / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
