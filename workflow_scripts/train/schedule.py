"""The plan of a cell's steps: how many, the learning rate of each, where the
validation loss is measured, which windows each reads, and (WSD) where it may branch
(the branches themselves: ``workflow_scripts.train.branching``).

Learning-rate schedules are pure functions of the step (nanoGPT's ``get_lr``, two shapes).

cosine: linear warmup, then cosine decay to ``min_ratio × peak`` at the last step.
wsd: linear warmup, a stable phase at the peak, then the (1 − sqrt) cooldown of
Hägele et al. (2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
Training Durations", sec. 3) over the last ``cooldown`` steps:
lr = floor + (peak − floor) · (1 − sqrt((t − t0) / (T − t0))), sampled at the
start of each step t, so the rate reaches the floor ``min_ratio × peak`` when the
last step ends (t = T). The paper decays to 0 (``min_ratio`` 0); the default keeps
cosine's floor so both schedules end at the same rate.
constant: linear warmup, then the peak to the end (the sine-regression blog's plain Adam);
``min_ratio`` is unused.

Under wsd every step before ``branch_step`` has the rate of any longer cell with
the same warmup: a longer run's stable phase is this cell's run up to there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCHEDULES = ("cosine", "wsd", "constant")


def lr_at(step: int, total_steps: int, peak: float, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup to ``peak``, then cosine decay to ``min_ratio × peak`` at the last step."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def wsd_lr_at(step: int, total_steps: int, peak: float, warmup_steps: int, min_ratio: float,
              cooldown_steps: int) -> float:
    """Linear warmup, constant ``peak``, then (1 − sqrt) cooldown over the last ``cooldown_steps`` steps."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    start = total_steps - cooldown_steps
    if step < start:
        return peak
    floor = min_ratio * peak
    return floor + (peak - floor) * (1 - math.sqrt(min(1.0, (step - start) / cooldown_steps)))


@dataclass(frozen=True)
class Schedule:
    """The learning rate of each of a cell's ``steps`` optimiser steps."""

    kind: str
    steps: int
    peak: float
    warmup: int
    min_ratio: float
    cooldown: int = 0  # wsd only

    def lr(self, step: int) -> float:
        if self.kind == "constant":
            return self.peak * (step + 1) / self.warmup if step < self.warmup else self.peak
        if self.kind == "wsd":
            return wsd_lr_at(step, self.steps, self.peak, self.warmup, self.min_ratio, self.cooldown)
        return lr_at(step, self.steps, self.peak, self.warmup, self.min_ratio)

    @property
    def branch_step(self) -> int:
        """The first step whose rate depends on the cell's length (wsd: its cooldown start, after warmup)."""
        if self.kind == "constant":
            return self.steps  # no step's rate depends on the length
        if self.kind != "wsd":
            return self.warmup  # cosine decays from the end of warmup on
        return min(self.steps, max(self.warmup, self.steps - self.cooldown))


def make_schedule(kind: str, steps: int, peak: float, min_ratio: float, warmup_frac: float = 0.05,
                  warmup_steps: int = 0, cooldown_frac: float = 0.2) -> Schedule:
    """The schedule of a cell of ``steps`` steps; a fixed ``warmup_steps`` (> 0) wins over ``warmup_frac``.

    A fixed warmup is never shortened to fit a short cell: the cell then stops inside it, at the
    rates of any longer cell (which a WSD branch needs).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"schedule {kind!r}: expected one of {list(SCHEDULES)}")
    warmup = warmup_steps if warmup_steps > 0 else max(1, int(warmup_frac * steps))
    cooldown = int(round(cooldown_frac * steps)) if kind == "wsd" else 0
    return Schedule(kind, steps, peak, warmup, min_ratio, cooldown)


def eval_steps(total_steps: int, points: int) -> list[int]:
    """Steps (0 = before training) after which the validation loss is measured, log-spaced."""
    logspaced = np.geomspace(1, total_steps, num=max(points, 1))
    return sorted({0, total_steps, *(int(round(s)) for s in logspaced)})


def plan_steps(cfg, available_tokens: int) -> int:
    """Optimiser steps of a token cell (``cfg``: its ``workflow_scripts.train.cell_config.TrainConfig``,
    of which it reads tokens, context, epochs and batch_size); fails before any training when the
    budget cannot be met."""
    if cfg.tokens + 1 > available_tokens:
        raise ValueError(
            f"token budget {cfg.tokens} exceeds the training split ({available_tokens} tokens) "
            f"by {cfg.tokens + 1 - available_tokens}: lower the data size or enlarge the source"
        )
    windows = cfg.tokens // cfg.context
    steps = windows * cfg.epochs // cfg.batch_size
    if steps < 1:
        raise ValueError(
            f"token budget {cfg.tokens} is smaller than one batch "
            f"({cfg.batch_size} × {cfg.context} = {cfg.batch_size * cfg.context} tokens)"
        )
    return steps


def window_order(n_windows: int, epochs: int, seed: int, stream_windows: int = 0) -> np.ndarray:
    """Window indices for every epoch: the first ``n_windows`` of the stream's ``stream_windows``
    windows shuffled once per seed, then each further epoch a seeded permutation of those.

    A smaller budget's order is a prefix of a larger one's first epoch (what WSD branching needs).
    """
    rng = np.random.default_rng(seed)
    first = rng.permutation(max(stream_windows, n_windows))[:n_windows]
    return np.concatenate([first, *(first[rng.permutation(n_windows)] for _ in range(epochs - 1))])
