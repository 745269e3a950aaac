"""The gradient noise scale of a training run: B_simple = tr(Σ)/|G|² (McCandlish et al. 2018).

|G|² is the squared norm of the true gradient and tr(Σ) the trace of the per-example gradient
covariance. A batch of B examples has E|G_B|² = |G|² + tr(Σ)/B, so gradient norms at two batch
sizes b_small < b_big give unbiased estimates of both (McCandlish et al. 2018, App. A, Eq. A.2-A.3):

    |G|²  ≈ (b_big |G_big|² − b_small |G_small|²) / (b_big − b_small)
    tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/b_small − 1/b_big)

Each estimate alone is noisy, so each is smoothed with an exponential moving average and the
noise scale is their ratio, EMA(tr Σ) / EMA(|G|²), as the paper does. Batch sizes here are in the
trainer's examples (windows of ``context`` tokens for a token cell): multiply by the context for
tokens.

A token cell measures it only at the training steps that start at an evaluation point (and at its
last step), so the curve row of that point gets the value at its own weights: the step's
gradient of the whole batch is G_big, and on one process one extra forward and backward of half
of the batch gives G_small (through ``torch.autograd.grad``, so the update and the random-number
stream are those of a run without it); under data parallelism each rank's gradient before the
all-reduce is a G_small of b = B / ranks, at no extra compute (``workflow_scripts.train.token_cell``).
The EMA decays per optimiser step (``DECAY`` ** steps since the last measurement), so measurements
at log-spaced points are averaged where they are close and not where the run has moved on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DECAY = 0.98  # per optimiser step: measurements ~50 steps apart keep a third of their weight
SMALL_FRACTION = 2  # one process: the small batch is the first 1/SMALL_FRACTION of the windows


def gradient_estimates(b_small: float, b_big: float, small_sq: float, big_sq: float) -> tuple[float, float]:
    """Unbiased (|G|², tr Σ) from squared gradient norms at batch sizes b_small < b_big (App. A)."""
    if not 0 < b_small < b_big:
        raise ValueError(f"batch sizes b_small = {b_small}, b_big = {b_big}: expected 0 < b_small < b_big")
    g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small)  # Eq. A.2
    trace = (small_sq - big_sq) / (1 / b_small - 1 / b_big)  # Eq. A.3
    return g2, trace


@dataclass
class NoiseScale:
    """Bias-corrected exponential moving averages of |G|² and tr(Σ), decaying per step; a plain dict
    of floats in a checkpoint's progress (``state``, ``from_state``)."""

    g2: float = 0.0
    trace: float = 0.0
    weight: float = 0.0  # the EMAs' total weight: dividing by it removes the bias toward 0 (as Adam's)
    step: int = -1  # step of the last measurement

    def add(self, step: int, b_small: float, b_big: float, small_sq: float, big_sq: float) -> None:
        g2, trace = gradient_estimates(b_small, b_big, small_sq, big_sq)
        keep = DECAY ** (step - self.step) if self.step >= 0 else 0.0
        self.g2 = keep * self.g2 + (1 - DECAY) * g2
        self.trace = keep * self.trace + (1 - DECAY) * trace
        self.weight = keep * self.weight + (1 - DECAY)
        self.step = step

    def value(self) -> float | None:
        """B_simple = EMA(tr Σ) / EMA(|G|²), in examples; None before any measurement, NaN when the
        |G|² estimate is not positive (noise swamps the gradient)."""
        if self.weight == 0:
            return None
        return self.trace / self.g2 if self.g2 > 0 and math.isfinite(self.trace) else float("nan")

    def state(self) -> dict:
        return {"g2": self.g2, "trace": self.trace, "weight": self.weight, "step": self.step}

    @classmethod
    def from_state(cls, state: dict | None) -> "NoiseScale":
        return cls(**state) if state else cls()


def squared_norm(grads) -> float:
    """Σ |g|² over gradient tensors (None for a parameter without one), summed in float64."""
    return float(sum(g.detach().double().pow(2).sum() for g in grads if g is not None))


def sub_batch_squared_norm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, autocast) -> float:
    """|G_small|² of ``model``'s mean loss on (x, y), leaving every ``.grad`` and the RNG streams as they were."""
    params = [p for p in model.parameters() if p.requires_grad]
    devices = [x.device.index] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # dropout's draws must not shift the run's stream
        with autocast():
            _, loss = model(x, y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return squared_norm(grads)


def measure(model: torch.nn.Module, world, x: torch.Tensor, y: torch.Tensor,
            autocast) -> tuple[int, int, float, float]:
    """(b_small, b_big, |G_small|², |G_big|²) of a step, after its backward pass on this rank's windows (x, y).

    Data-parallel (``world``: ``workflow_scripts.train.ddp.World``), the gradients are the rank's own
    (the step ran in ``no_sync``) and are averaged over the ranks here, before the update.
    """
    grads = [p.grad for p in model.parameters()]
    if world.size > 1:  # each rank's gradient is a small batch: its share of the windows
        b_small, b_big = len(x), len(x) * world.size
        small_sq = world.sum(squared_norm(grads)) / world.size
        all_reduce_mean(grads)
    else:  # one extra forward and backward of the first half of the windows
        b_small, b_big = len(x) // SMALL_FRACTION, len(x)
        small_sq = sub_batch_squared_norm(model, x[:b_small], y[:b_small], autocast)
    return b_small, b_big, small_sq, squared_norm(grads)


def record(tracks, step: int, norms: tuple[int, int, float, float]) -> None:
    """Add a step's measurement (``measure``) to each track's averages (``workflow_scripts.train.branching.Track``,
    its ``noise`` state updated in place, as the checkpoint saves it) and to its curve row of this step."""
    for track in tracks:
        noise = NoiseScale.from_state(track.noise)
        noise.add(step, *norms)
        track.noise.update(noise.state())
        if track.curve and track.curve[-1]["step"] == step:
            track.curve[-1]["noise_scale"] = noise.value()


def all_reduce_mean(grads) -> None:
    """Average the ranks' gradients in place (what DDP's backward does when not in ``no_sync``)."""
    import torch.distributed as dist

    world = dist.get_world_size()
    for g in grads:
        if g is not None:
            dist.all_reduce(g)
            g.div_(world)
