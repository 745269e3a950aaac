"""Batches of token windows, and the losses of fixed evaluation samples (validation, test, transfer).

Each evaluation set is the same fixed sample at every evaluation point and in
every cell: the first ``eval_tokens // context`` whole windows of its token
file. Under data parallelism the windows are split across the ranks and the
summed losses all-reduced, so every rank gets the loss of the whole sample.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from workflow_scripts.plan.resources import EVAL_BATCH, EVAL_LOGITS
from workflow_scripts.data import optimal
from workflow_scripts.data.tokens import open_tokens
from workflow_scripts.io import read_json


def get_batch(tokens: np.ndarray, starts: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets for windows starting at ``starts``; reads only those rows."""
    rows = np.asarray(tokens[starts[:, None] + np.arange(context + 1)], dtype=np.int64)  # (B, T+1)
    rows = torch.from_numpy(rows)
    return rows[:, :-1], rows[:, 1:]


@dataclass
class EvalSet:
    """A fixed evaluation sample: ``x``, ``y`` of shape (windows, context)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    meta: dict  # the token file's meta.json
    optimal_loss: float | None  # the generator's floor on these windows, where it knows one


def eval_set(name: str, path: str, eval_tokens: int, context: int, vocab_size: int,
             device: torch.device) -> EvalSet:
    """The first ``eval_tokens`` tokens of ``path`` (whole windows); fails in one line before any training
    when the file holds less than one window or was tokenized with another vocabulary."""
    meta = read_json(path.removesuffix(".bin") + ".json")
    if int(meta["vocab_size"]) != vocab_size:
        raise ValueError(f"{name} tokens {path} have vocabulary {meta['vocab_size']}, expected the training "
                         f"split's {vocab_size}: tokenize them with the experiment's tokenizer")
    stream = open_tokens(path)
    n = min(eval_tokens, len(stream) - 1) // context
    if n < 1:
        raise ValueError(f"{name} split {path} has {len(stream)} tokens, fewer than one window of {context}")
    x, y = get_batch(stream, np.arange(n) * context, context)
    floor = optimal.window_loss(meta, torch.cat([x[:, :1], y], dim=1).numpy())
    return EvalSet(name, x.to(device), y.to(device), meta, floor)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, autocast=contextlib.nullcontext,
             batch_size: int = EVAL_BATCH, world=None) -> float:
    """Mean next-token cross-entropy (nats) over the fixed sample ``x``, ``y``.

    With a ``world`` of several ranks (``workflow_scripts.train.ddp``) each rank takes a
    contiguous share of the windows and the sums are all-reduced.
    """
    # Logits are windows x context x vocabulary floats: capped so that a GPT-2-sized
    # vocabulary does not cost gigabytes during evaluation.
    batch_size = max(1, min(batch_size, EVAL_LOGITS // (x.shape[1] * model.cfg.vocab_size)))
    lo, hi = world.share(len(x)) if world is not None else (0, len(x))
    model.eval()
    total = 0.0
    for i in range(lo, hi, batch_size):
        j = min(i + batch_size, hi)
        with autocast():
            _, loss = model(x[i:j], y[i:j])
        total += loss.item() * (j - i)
    model.train()
    if world is not None:
        total = world.sum(total)
    return total / len(x)
