"""Checks an encoder that ijepa-eval exported to safetensors against the checkpoint it came from: the Python
safetensors package must read it, with the same tensor names and values as the checkpoint's state dict (without
"module."), and the reference model built from its __metadata__ must load it strictly and reproduce the outputs
in expected.json. Prints what it checked; exits non-zero on any difference.

    check_safetensors.py EXPORT.safetensors CHECKPOINT.pth.tar KEY EXPECTED.json
"""
import json
import sys

import torch
from safetensors import safe_open

import ijepa_ref as ref


def main(export, checkpoint, key, expected_path):
    with safe_open(export, framework="pt") as f:
        meta = f.metadata()
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)[key]
    want = {name.removeprefix("module."): t for name, t in state.items()}
    if sorted(tensors) != sorted(want):
        sys.exit(f"FAIL names differ: {sorted(set(tensors) ^ set(want))}")
    for name, t in want.items():
        if tensors[name].dtype != t.dtype or not torch.equal(tensors[name], t):
            sys.exit(f"FAIL tensor {name} differs")
    print(f"ok   {len(tensors)} tensors identical to {key}")

    dim = int(meta["embed_dim"])
    model = ref.VisionTransformer(int(meta["img_size"]), int(meta["patch_size"]), int(meta["in_chans"]), dim,
                                  int(meta["depth"]), int(meta["num_heads"]), int(meta["mlp_hidden"]) / dim)
    model.load_state_dict(tensors, strict=True)
    expected = json.loads(open(expected_path).read())
    size, chans = int(meta["img_size"]), int(meta["in_chans"])
    x = torch.sin(0.01 * torch.arange(2 * chans * size * size, dtype=torch.float64)).float()
    with torch.no_grad():
        out = model(x.reshape(2, chans, size, size)).flatten()
    diff = (out - torch.tensor(expected[key]["output"])).abs().max().item()
    if diff > 1e-5:
        sys.exit(f"FAIL reference model outputs differ by {diff}")
    print(f"ok   reference model loads it strictly; outputs match (max diff {diff:.2e})")


if __name__ == "__main__":
    main(*sys.argv[1:5])
