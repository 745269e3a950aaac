"""MLP and CNN model families for samples datasets, with exact size and FLOP accounting.

mlp: the input flattened, ``n_layer`` hidden ``Linear(·, width)`` + activation (+ dropout)
layers, then a ``Linear`` output (1 unit per regression target, one logit per class). It is
the classic MLP of the sine-regression blog: biases on, PyTorch's default initialisation.
``n_layer`` 0 is the linear model.

cnn: the course-exercise CNN (conv-act-pool, conv-act-pool, dropout, linear) for 1-D inputs
(x_shape [L], e.g. MNIST-1D with L = 40: ``Conv1d``) and 2-D inputs (x_shape [H, W], e.g.
MNIST 28 × 28: ``Conv2d``), one input channel. Block i (i = 0 … n_layer − 1) is a
convolution to ``width · 2^i`` channels (kernel 3, stride 1, padding 1: same size), the
activation, then a 2-wide max-pool (stride 2, floor) *only if every spatial side is at least
4* before it, so the map never shrinks below 2 per side: MNIST 28 → 14 → 7 → 3 → 3 …,
MNIST-1D 40 → 20 → 10 → 5 → 2 → 2 …. The map is then flattened, dropped out and classified
by one ``Linear``.

Both read uint8 inputs (MNIST pixels) and scale them by ``x_scale`` (1/255) on the fly, so
the training set stays uint8 on the device.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

FAMILIES = ("mlp", "cnn")
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
POOL_MIN_SIDE = 4  # pool only while every spatial side is at least this


@dataclass(frozen=True)
class NetConfig:
    family: str  # mlp | cnn
    in_shape: tuple[int, ...]  # one sample's x shape: [1] sine, [40] MNIST-1D, [28, 28] MNIST
    n_outputs: int  # 1 for a scalar regression, n_classes for classification
    n_layer: int = 2
    width: int = 32
    activation: str = "relu"
    dropout: float = 0.0
    x_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(s) for s in self.in_shape))  # lists from JSON
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r}: expected one of {list(FAMILIES)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r}: expected one of {list(ACTIVATIONS)}")
        if not self.in_shape or min(self.in_shape) < 1:
            raise ValueError(f"in_shape {list(self.in_shape)}: expected positive sides")
        if self.family == "cnn" and len(self.in_shape) not in (1, 2):
            raise ValueError(f"in_shape {list(self.in_shape)}: a cnn expects 1-D [L] or 2-D [H, W] samples")
        least = 1 if self.family == "cnn" else 0
        if self.n_layer < least:
            raise ValueError(f"n_layer={self.n_layer}: expected an integer >= {least} for {self.family}")
        for name in ("n_outputs", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: expected a positive integer")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout}: expected a probability in [0, 1)")
        if not (self.x_scale > 0 and math.isfinite(self.x_scale)):
            raise ValueError(f"x_scale={self.x_scale}: expected a positive finite number")

    def to_dict(self) -> dict:
        return asdict(self) | {"in_shape": list(self.in_shape)}


def conv_plan(cfg: NetConfig) -> list[tuple[int, int, tuple[int, ...], bool]]:
    """Per conv block: (in channels, out channels, spatial shape of its output, pooled after?)."""
    plan, channels, shape = [], 1, cfg.in_shape
    for i in range(cfg.n_layer):
        out = cfg.width * 2**i
        pooled = min(shape) >= POOL_MIN_SIDE
        plan.append((channels, out, shape, pooled))
        channels, shape = out, tuple(s // 2 for s in shape) if pooled else shape
    return plan


def _head_inputs(cfg: NetConfig) -> int:
    """Features entering the output Linear."""
    if cfg.family == "mlp":
        return cfg.width if cfg.n_layer else math.prod(cfg.in_shape)
    *_, (_, channels, shape, pooled) = conv_plan(cfg)
    return channels * math.prod(s // 2 if pooled else s for s in shape)


class Net(nn.Module):
    """An mlp or cnn of ``cfg``; ``forward(x, y)`` returns (outputs, loss or None)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        act = ACTIVATIONS[cfg.activation]
        layers: list[nn.Module] = []
        if cfg.family == "mlp":
            fan_in = math.prod(cfg.in_shape)
            for _ in range(cfg.n_layer):
                layers += [nn.Linear(fan_in, cfg.width), act()]
                if cfg.dropout:
                    layers.append(nn.Dropout(cfg.dropout))
                fan_in = cfg.width
        else:
            conv, pool = (nn.Conv1d, nn.MaxPool1d) if len(cfg.in_shape) == 1 else (nn.Conv2d, nn.MaxPool2d)
            for c_in, c_out, _, pooled in conv_plan(cfg):
                layers += [conv(c_in, c_out, kernel_size=3, padding=1), act()]
                if pooled:
                    layers.append(pool(2))
            layers.append(nn.Flatten())
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(_head_inputs(cfg), cfg.n_outputs)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        if x.dtype != torch.float32 or self.cfg.x_scale != 1.0:
            x = x.to(torch.float32) * self.cfg.x_scale  # uint8 pixels → [0, 1]
        B = x.shape[0]
        # mlp: (B, *in_shape) -> (B, prod); cnn: (B, L) -> (B, 1, L) or (B, H, W) -> (B, 1, H, W)
        x = x.reshape(B, -1) if self.cfg.family == "mlp" else x.unsqueeze(1)
        out = self.head(self.body(x))  # (B, n_outputs)
        if y is None:
            return out, None
        return out, loss_fn(out, y)


def loss_fn(out: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy (nats) for class ids (int64 y of shape (B,)), else mean squared error."""
    if y.dtype == torch.int64:
        return F.cross_entropy(out.float(), y, reduction=reduction)
    return F.mse_loss(out.float(), y, reduction=reduction)


def count_parameters(cfg: NetConfig) -> dict[str, int]:
    """Analytic parameter counts: weights and biases of every Linear and convolution.

    There are no embeddings, so ``N_nonembedding`` equals ``N``.
    """
    if cfg.family == "mlp":
        fans = [math.prod(cfg.in_shape)] + [cfg.width] * cfg.n_layer
        body = sum(a * b + b for a, b in zip(fans, fans[1:]))
    else:
        k = 3 ** len(cfg.in_shape)
        body = sum(c_in * c_out * k + c_out for c_in, c_out, _, _ in conv_plan(cfg))
    n = body + _head_inputs(cfg) * cfg.n_outputs + cfg.n_outputs
    return {"N": n, "N_nonembedding": n}


def flop_terms(cfg: NetConfig) -> dict[str, int]:
    """Forward FLOPs of one sample by kind.

    ``matmul``: 2 per multiply-add of every Linear and convolution, exactly what
    ``torch.utils.flop_counter.FlopCounterMode`` counts (convolutions at every output position
    with the full kernel, the zero padding included, as the kernels compute it).
    ``bias``: one add per output element of those layers. ``activation``: one per element
    (tanh and GELU cost more on the hardware; one is the usual convention and keeps the count
    independent of the kernel). ``pool``: 2^d − 1 comparisons per pooled output element.
    Not counted: the input scaling, flatten, dropout (a training-only mask) and the loss.
    """
    terms = {"matmul": 0, "bias": 0, "activation": 0, "pool": 0}
    if cfg.family == "mlp":
        fans = [math.prod(cfg.in_shape)] + [cfg.width] * cfg.n_layer
        for a, b in zip(fans, fans[1:]):
            terms["matmul"] += 2 * a * b
            terms["bias"] += b
            terms["activation"] += b
    else:
        d = len(cfg.in_shape)
        for c_in, c_out, shape, pooled in conv_plan(cfg):
            positions = math.prod(shape)
            terms["matmul"] += 2 * c_in * 3**d * c_out * positions
            terms["bias"] += c_out * positions
            terms["activation"] += c_out * positions
            if pooled:
                terms["pool"] += (2**d - 1) * c_out * math.prod(s // 2 for s in shape)
    head_in = _head_inputs(cfg)
    terms["matmul"] += 2 * head_in * cfg.n_outputs
    terms["bias"] += cfg.n_outputs
    return terms


def forward_flops_per_sample(cfg: NetConfig) -> int:
    """Exact forward FLOPs of one sample: the sum of ``flop_terms``."""
    return sum(flop_terms(cfg).values())


def widest_activation(cfg: NetConfig) -> int:
    """Floats of the largest intermediate tensor per sample, to cap evaluation batches."""
    if cfg.family == "mlp":
        return max(math.prod(cfg.in_shape), cfg.width, cfg.n_outputs)
    return max(c_out * math.prod(shape) for _, c_out, shape, _ in conv_plan(cfg))


def training_flops(cfg: NetConfig, samples: int) -> dict[str, float]:
    """Training compute: 3 × forward (backward ≈ 2 × forward), and Kaplan's 6ND beside it."""
    per_sample = 3.0 * forward_flops_per_sample(cfg)
    n = count_parameters(cfg)["N"]
    return {"C": per_sample * samples, "C_6ND": 6.0 * n * samples, "flops_per_sample": per_sample}
