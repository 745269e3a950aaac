"""The optimiser and its step, shared by the token trainer (train.py) and the samples trainer."""

from __future__ import annotations

import math

import torch

from workflow_scripts.train import device as devices


def make_optimizer(model: torch.nn.Module, cfg, device: torch.device) -> torch.optim.AdamW:
    """AdamW with cfg's lr, betas and weight decay on matrices and kernels only.

    Gains of LayerNorm and biases are left alone, as nanoGPT does; weight_decay 0 is Adam.
    """
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=devices.fused_adamw(device))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float) -> None:
    """One optimiser step on ``loss``: gradients, the norm clip (0 disables), AdamW."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()


def final_losses(curve: list[dict], ok: bool) -> dict:
    """val_loss and train_loss of the last evaluation, and the best val_loss (None after divergence)."""
    final = curve[-1] if ok and curve else None
    finite = [row["eval_loss"] for row in curve if math.isfinite(row["eval_loss"])]
    return {
        "val_loss": final["eval_loss"] if final else None,
        "val_loss_best": min(finite) if finite else None,
        "train_loss": final["train_loss"] if final else None,
    }
