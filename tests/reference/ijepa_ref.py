"""Eager-PyTorch port of the official I-JEPA code (facebookresearch/ijepa @ 52c1ae9), written from
../shared/reference/IJEPA_REFERENCE.md.

It serves three purposes: it checks that this torch reproduces the golden numbers (the generator did not change),
it is the side-by-side baseline for `ijepa-bench` (bench_reference_step.py), and it writes checkpoints in the
reference's format for the interop tests. It draws random numbers in the reference's order, so keep it that way.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VIT_SIZES = {  # name: (embed_dim, depth, num_heads, mlp_ratio)
    "vit_tiny": (192, 12, 3, 4.0),
    "vit_small": (384, 12, 6, 4.0),
    "vit_base": (768, 12, 12, 4.0),
    "vit_large": (1024, 24, 16, 4.0),
    "vit_huge": (1280, 32, 16, 4.0),
    "vit_giant": (1408, 40, 16, 48 / 11),
}


def sincos_1d(dim, pos):
    omega = np.arange(dim // 2, dtype=float) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid_size):
    g = np.arange(grid_size, dtype=float)
    grid = np.stack(np.meshgrid(g, g), axis=0).reshape([2, 1, grid_size, grid_size])
    return np.concatenate([sincos_1d(dim // 2, grid[0]), sincos_1d(dim // 2, grid[1])], axis=1)


def trunc_normal_(t, std=0.02, a=-2.0, b=2.0):
    with torch.no_grad():
        norm_cdf = lambda x: (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0
        l, u = norm_cdf(a / std), norm_cdf(b / std)
        t.uniform_(2 * l - 1, 2 * u - 1)
        t.erfinv_()
        t.mul_(std * math.sqrt(2.0))
        t.clamp_(min=a, max=b)
        return t


def apply_masks(x, masks):
    return torch.cat([torch.gather(x, 1, m.unsqueeze(-1).repeat(1, 1, x.size(-1))) for m in masks], dim=0)


def repeat_interleave_batch(x, B, repeat):
    N = len(x) // B
    return torch.cat([torch.cat([x[i * B:(i + 1) * B] for _ in range(repeat)], dim=0) for i in range(N)], dim=0)


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _init_weights(m):
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight)
        nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.LayerNorm):
        nn.init.constant_(m.bias, 0)
        nn.init.constant_(m.weight, 1.0)
    elif isinstance(m, nn.Conv2d):
        trunc_normal_(m.weight)
        nn.init.constant_(m.bias, 0)


def _rescale_blocks(blocks):
    for layer_id, blk in enumerate(blocks, start=1):
        blk.attn.proj.weight.data.div_(math.sqrt(2.0 * layer_id))
        blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer_id))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, dim, depth, num_heads, mlp_ratio):
        super().__init__()
        self.embed_dim, self.num_heads = dim, num_heads
        self.patch_embed = PatchEmbed(patch_size, in_chans, dim)
        self.num_patches = (img_size // patch_size) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches, dim), requires_grad=False)
        self.pos_embed.data.copy_(torch.from_numpy(sincos_2d(dim, img_size // patch_size)).float().unsqueeze(0))
        self.blocks = nn.ModuleList([Block(dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(_init_weights)
        _rescale_blocks(self.blocks)

    def forward(self, x, masks=None):
        x = self.patch_embed(x) + self.pos_embed
        if masks is not None:
            x = apply_masks(x, masks)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class Predictor(nn.Module):
    def __init__(self, num_patches, dim, pred_dim, depth, num_heads):
        super().__init__()
        self.predictor_embed = nn.Linear(dim, pred_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.predictor_pos_embed = nn.Parameter(torch.zeros(1, num_patches, pred_dim), requires_grad=False)
        grid = int(num_patches**0.5)
        self.predictor_pos_embed.data.copy_(torch.from_numpy(sincos_2d(pred_dim, grid)).float().unsqueeze(0))
        self.predictor_blocks = nn.ModuleList([Block(pred_dim, num_heads, 4.0) for _ in range(depth)])
        self.predictor_norm = nn.LayerNorm(pred_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(pred_dim, dim)
        trunc_normal_(self.mask_token)
        self.apply(_init_weights)
        _rescale_blocks(self.predictor_blocks)

    def forward(self, x, masks_x, masks):
        B = len(x) // len(masks_x)
        x = self.predictor_embed(x)
        x = x + apply_masks(self.predictor_pos_embed.repeat(B, 1, 1), masks_x)
        n_ctx = x.shape[1]
        pos = apply_masks(self.predictor_pos_embed.repeat(B, 1, 1), masks)
        pos = repeat_interleave_batch(pos, B, repeat=len(masks_x))
        pred_tokens = self.mask_token.repeat(pos.size(0), pos.size(1), 1) + pos
        x = torch.cat([x.repeat(len(masks), 1, 1), pred_tokens], dim=1)
        for blk in self.predictor_blocks:
            x = blk(x)
        return self.predictor_proj(self.predictor_norm(x)[:, n_ctx:])


def init_model(model_name, img_size, patch_size, in_chans, pred_depth, pred_dim):
    """The reference's helper: build both models, then redraw every Linear and reset every LayerNorm."""
    dim, depth, heads, mlp_ratio = VIT_SIZES[model_name]
    encoder = VisionTransformer(img_size, patch_size, in_chans, dim, depth, heads, mlp_ratio)
    predictor = Predictor(encoder.num_patches, dim, pred_dim, pred_depth, heads)
    for model in (encoder, predictor):
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.LayerNorm)):
                _init_weights(m)
    return encoder, predictor


class MaskCollator:
    """Multi-block masks with the reference's generator use (block sizes from a generator seeded with the
    call counter, positions from the global generator)."""

    def __init__(self, img_size, patch_size, min_keep, enc_scale=(0.85, 1.0), pred_scale=(0.15, 0.2),
                 aspect=(0.75, 1.5), nenc=1, npred=4):
        self.height = self.width = img_size // patch_size
        self.min_keep, self.enc_scale, self.pred_scale, self.aspect = min_keep, enc_scale, pred_scale, aspect
        self.nenc, self.npred = nenc, npred
        self.counter = -1

    def _block_size(self, g, scale, aspect):
        r = torch.rand(1, generator=g).item()
        keep = int(self.height * self.width * (scale[0] + r * (scale[1] - scale[0])))
        a = aspect[0] + r * (aspect[1] - aspect[0])
        h, w = int(round(math.sqrt(keep * a))), int(round(math.sqrt(keep / a)))
        while h >= self.height:
            h -= 1
        while w >= self.width:
            w -= 1
        return h, w

    def _block_mask(self, size, acceptable=None):
        h, w = size
        tries, timeout = 0, 20
        while True:
            top = torch.randint(0, self.height - h, (1,))
            left = torch.randint(0, self.width - w, (1,))
            mask = torch.zeros((self.height, self.width), dtype=torch.int32)
            mask[top:top + h, left:left + w] = 1
            if acceptable is not None:
                for k in range(max(len(acceptable) - tries, 0)):
                    mask *= acceptable[k]
            mask = torch.nonzero(mask.flatten())
            if len(mask) > self.min_keep:
                break
            timeout -= 1
            if timeout == 0:
                tries, timeout = tries + 1, 20
        complement = torch.ones((self.height, self.width), dtype=torch.int32)
        complement[top:top + h, left:left + w] = 0
        return mask.squeeze(), complement

    def __call__(self, B):
        self.counter += 1
        g = torch.Generator()
        g.manual_seed(self.counter)
        p_size = self._block_size(g, self.pred_scale, self.aspect)
        e_size = self._block_size(g, self.enc_scale, (1.0, 1.0))
        preds, encs = [], []
        keep_p = keep_e = self.height * self.width
        for _ in range(B):
            mp, mc = [], []
            for _ in range(self.npred):
                m, c = self._block_mask(p_size)
                mp.append(m)
                mc.append(c)
                keep_p = min(keep_p, len(m))
            preds.append(mp)
            me = []
            for _ in range(self.nenc):
                m, _ = self._block_mask(e_size, acceptable=mc)
                me.append(m)
                keep_e = min(keep_e, len(m))
            encs.append(me)
        masks_enc = [torch.stack([encs[b][i][:keep_e] for b in range(B)]) for i in range(self.nenc)]
        masks_pred = [torch.stack([preds[b][i][:keep_p] for b in range(B)]) for i in range(self.npred)]
        return masks_enc, masks_pred


class WarmupCosine:
    def __init__(self, warmup_steps, start_lr, ref_lr, t_max, final_lr):
        self.warmup, self.start, self.ref, self.final = warmup_steps, start_lr, ref_lr, final_lr
        self.t_max, self.step_ = t_max - warmup_steps, 0.0

    def step(self):
        self.step_ += 1
        if self.step_ < self.warmup:
            return self.start + self.step_ / max(1, self.warmup) * (self.ref - self.start)
        p = (self.step_ - self.warmup) / max(1, self.t_max)
        return max(self.final, self.final + (self.ref - self.final) * 0.5 * (1.0 + math.cos(math.pi * p)))


class CosineWD:
    def __init__(self, ref_wd, t_max, final_wd):
        self.ref, self.final, self.t_max, self.step_ = ref_wd, final_wd, t_max, 0.0

    def step(self):
        self.step_ += 1
        wd = self.final + (self.ref - self.final) * 0.5 * (1.0 + math.cos(math.pi * self.step_ / self.t_max))
        return max(self.final, wd) if self.final <= self.ref else min(self.final, wd)


def param_groups(encoder, predictor):
    decay = lambda n, p: "bias" not in n and len(p.shape) != 1
    return [
        {"params": [p for n, p in encoder.named_parameters() if decay(n, p)]},
        {"params": [p for n, p in predictor.named_parameters() if decay(n, p)]},
        {"params": [p for n, p in encoder.named_parameters() if not decay(n, p)], "WD_exclude": True, "weight_decay": 0},
        {"params": [p for n, p in predictor.named_parameters() if not decay(n, p)], "WD_exclude": True, "weight_decay": 0},
    ]


class Trainer:
    """The reference's train_step, with its schedules, for one process."""

    def __init__(self, encoder, predictor, ipe, epochs, warmup, start_lr, lr, final_lr, wd, final_wd,
                 ema=(0.996, 1.0), ipe_scale=1.0, use_bfloat16=False):
        import copy
        self.encoder, self.predictor = encoder, predictor
        self.target = copy.deepcopy(encoder)
        for p in self.target.parameters():
            p.requires_grad = False
        self.opt = torch.optim.AdamW(param_groups(encoder, predictor))
        total = int(ipe_scale * epochs * ipe)
        self.lr_sched = WarmupCosine(int(warmup * ipe), start_lr, lr, total, final_lr)
        self.wd_sched = CosineWD(wd, total, final_wd)
        self.momentum = iter(ema[0] + i * (ema[1] - ema[0]) / total for i in range(total + 1))
        self.bf16 = use_bfloat16
        self.scaler = None  # the reference's torch.cuda.amp.GradScaler, made on the first bf16 step on a GPU

    def step(self, imgs, masks_enc, masks_pred):
        lr, wd = self.lr_sched.step(), self.wd_sched.step()
        for g in self.opt.param_groups:
            g["lr"] = lr
            if not g.get("WD_exclude", False):
                g["weight_decay"] = wd
        if self.bf16 and imgs.is_cuda and self.scaler is None:
            self.scaler = torch.amp.GradScaler("cuda")
        with torch.autocast(imgs.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            with torch.no_grad():
                h = self.target(imgs)
                h = F.layer_norm(h, (h.size(-1),))
                B = len(h)
                h = repeat_interleave_batch(apply_masks(h, masks_pred), B, repeat=len(masks_enc))
            z = self.predictor(self.encoder(imgs, masks_enc), masks_enc, masks_pred)
            loss = F.smooth_l1_loss(z, h)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        self.opt.zero_grad()
        m = next(self.momentum)
        with torch.no_grad():
            for q, k in zip(self.encoder.parameters(), self.target.parameters()):
                k.data.mul_(m).add_((1.0 - m) * q.detach().data)
        return {"lr": lr, "wd": wd, "ema_momentum": m, "loss": loss, "z": z, "h": h}
