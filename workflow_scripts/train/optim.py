"""The optimiser and its step, shared by the token trainer (workflow_scripts.train.token_cell) and the
samples trainer (workflow_scripts.train.samples_cell)."""

from __future__ import annotations

import inspect
import math

import torch

from workflow_scripts.train import device as devices


# torch.optim wraps Optimizer's methods in torch._disable_dynamo and step in _use_grad_for_differentiable,
# and both import torch._dynamo on their first call: 2-3 s per process (torch 2.13, GUIDE sec. 5) in cells
# that compile nothing. inspect.unwrap gives the methods themselves (the wrappers use functools.wraps).
_plain = {name: inspect.unwrap(getattr(torch.optim.Adam, name))
          for name in ("add_param_group", "zero_grad", "state_dict", "load_state_dict", "step")}


class EagerAdamW(torch.optim.AdamW):
    """torch.optim.AdamW without its torch.compile hooks: the same update, the same state and
    state_dict, but neither building nor stepping it imports torch._dynamo (for models that are
    not compiled; tests/train/test_optim.py checks the numbers against torch.optim.AdamW bit for bit)."""

    add_param_group = _plain["add_param_group"]
    zero_grad = _plain["zero_grad"]
    state_dict = _plain["state_dict"]
    load_state_dict = _plain["load_state_dict"]

    def step(self, closure=None):
        # What _use_grad_for_differentiable does outside torch.compile: no autograd (differentiable=False).
        with torch.no_grad():
            return _plain["step"](self, closure)


def make_optimizer(model: torch.nn.Module, cfg, device: torch.device) -> torch.optim.AdamW:
    """AdamW with cfg's lr, betas and weight decay on matrices and kernels only.

    Gains of LayerNorm and biases are left alone, as nanoGPT does; weight_decay 0 is Adam.
    Uncompiled cells get EagerAdamW (the same numbers, seconds less start-up).
    """
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    kind = torch.optim.AdamW if getattr(cfg, "compile", False) else EagerAdamW
    return kind(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=devices.fused_adamw(device))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float,
           inspect=None) -> None:
    """One optimiser step on ``loss``: gradients, the norm clip (0 disables), AdamW.

    ``inspect()``, if given, runs between the backward pass and the clip (the gradient noise scale).
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if inspect is not None:
        inspect()
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
