"""Checks that the eager port in ijepa_ref.py, run with this environment's torch, reproduces
ijepa_golden.json. Prints one line per check and exits non-zero on the first mismatch."""
import json
import math
import sys
from pathlib import Path

import torch

import ijepa_ref as ref

GOLDEN = json.loads((Path(__file__).resolve().parents[3] / "shared/reference/ijepa_golden.json").read_text())


def close(a, b, rel=1e-4, abs_=1e-6):
    return abs(a - b) <= max(abs_, rel * abs(b))


def check(name, ok):
    print(("ok   " if ok else "FAIL ") + name)
    return ok


def golden_run(key, img, patch, chans, min_keep, batch):
    g = GOLDEN[key]
    torch.manual_seed(0)
    enc, pred = ref.init_model("vit_tiny", img, patch, chans, 2, 96)
    ok = True
    for n, p in enc.named_parameters():
        ok &= close(p.double().sum().item(), g["encoder_param_sums"][n], 1e-6, 1e-6)
    for n, p in pred.named_parameters():
        ok &= close(p.double().sum().item(), g["predictor_param_sums"][n], 1e-6, 1e-6)
    check(f"{key} init sums", ok)
    m_enc, m_pred = ref.MaskCollator(img, patch, min_keep)(batch)
    check(f"{key} masks", [m.tolist() for m in m_enc] == g["masks_enc"] and [m.tolist() for m in m_pred] == g["masks_pred"])
    n = batch * chans * img * img
    imgs = torch.sin(0.001 * torch.arange(n, dtype=torch.float64)).float().reshape(batch, chans, img, img)
    tr = ref.Trainer(enc, pred, ipe=10, epochs=2, warmup=1, start_lr=2e-4, lr=1e-3, final_lr=1e-6, wd=0.04, final_wd=0.4)
    for s in g["steps"]:
        out = tr.step(imgs, m_enc, m_pred)
        check(f"{key} step {s['step']} loss {out['loss'].item():.9f} vs {s['loss']:.9f}", close(out["loss"].item(), s["loss"]))


golden_run("train_in224_tiny16", 224, 16, 3, 10, 2)
golden_run("train_fmnist_tiny4", 28, 4, 1, 4, 4)
for spec in GOLDEN["masks"]:
    torch.manual_seed(0)
    coll = ref.MaskCollator(spec["img"], spec["patch"], spec["min_keep"])
    for call in spec["calls"]:
        e, p = coll(spec["batch"])
        check(f"masks img{spec['img']} call {call['call']}", [m.tolist() for m in e] == call["enc"] and [m.tolist() for m in p] == call["pred"])
