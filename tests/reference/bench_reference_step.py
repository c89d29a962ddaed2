"""Side-by-side baseline for `ijepa-bench step`: the reference's whole training step (masks, forward, backward,
AdamW, EMA) in eager PyTorch, from ijepa_ref.py, on the benchmark workloads (CPU, or CUDA with the reference's
GradScaler in bf16):
  a: 28x28x1, patch 4, ViT-tiny, predictor depth 6 width 96, batch 64
  b: 224x224x3, patch 16, same models, batch 16
Prints JSON like ijepa-bench: images_per_second (median over timed steps after warm-up) and step_ms.

  .venv/bin/python tests/reference/bench_reference_step.py --workload a --dtype bf16 --threads 2 --steps 20
"""
import argparse
import json
import statistics
import time

import torch

import ijepa_ref as ref

WORKLOADS = {"a": (28, 4, 1, 4, 64), "b": (224, 16, 3, 10, 16)}  # img, patch, chans, min_keep, batch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", choices=WORKLOADS, default="a")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    img, patch, chans, min_keep, batch = WORKLOADS[args.workload]
    torch.manual_seed(0)
    enc, pred = ref.init_model("vit_tiny", img, patch, chans, 6, 96)
    enc, pred = enc.to(args.device), pred.to(args.device)
    trainer = ref.Trainer(enc, pred, ipe=1000, epochs=10, warmup=1, start_lr=2e-4, lr=1e-3, final_lr=1e-6, wd=0.04,
                          final_wd=0.4, use_bfloat16=args.dtype == "bf16")
    collator = ref.MaskCollator(img, patch, min_keep)
    imgs = torch.randn(batch, chans, img, img).to(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        m_enc, m_pred = collator(batch)
        # The reference's loader pins memory and copies non-blocking; the masks are small index lists.
        m_enc = [m.to(args.device, non_blocking=True) for m in m_enc]
        m_pred = [m.to(args.device, non_blocking=True) for m in m_pred]
        trainer.step(imgs, m_enc, m_pred)
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    print(json.dumps({"implementation": "reference-eager-pytorch", "torch": torch.__version__, "workload": args.workload,
                      "dtype": args.dtype, "device": args.device, "threads": args.threads, "steps": args.steps,
                      "images_per_second": batch / step_s, "step_ms": 1e3 * step_s}))


if __name__ == "__main__":
    main()
