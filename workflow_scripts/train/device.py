"""Where a cell trains and at what precision: CUDA, then MPS, then CPU.

On CUDA the usual fast path is taken (bf16 autocast, TF32 matmuls, fused
AdamW). On CPU the default stays fp32: bf16 autocast was measured slower than
fp32 for small models on this project's reference machine (0.6x at d = 32; the
README's "Measured" section), and fp32 keeps resumed runs bitwise equal to
uninterrupted ones.
"""

from __future__ import annotations

import contextlib
import ctypes

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def choose_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; a named device that is missing is an error."""
    kind, _, index = name.partition(":")  # "cuda:1": a data-parallel rank's own GPU
    if kind not in DEVICES or (index and not (kind == "cuda" and index.isdigit())):
        raise ValueError(f"device {name!r}: expected one of {list(DEVICES)}")
    if name == "auto":
        name = kind = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": _mps_available()}
    if not available[kind]:
        raise ValueError(f"device {name!r} is not available on this machine: expected one of "
                         f"{[d for d, ok in available.items() if ok] + ['auto']}")
    return torch.device(name)


def choose_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 on CUDA and fp32 elsewhere."""
    if name not in PRECISIONS:
        raise ValueError(f"precision {name!r}: expected one of {list(PRECISIONS)}")
    if name == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return name


def keep_freed_memory() -> bool:
    """Keep large freed blocks in the process (glibc only); True when applied.

    By default glibc hands every large freed tensor back to the kernel, so each
    step page-faults its logits in again: measured 2x slower at vocabulary 8192
    (benchmarks/train_throughput.py). The cost: a process holds its peak memory.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to do
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


def configure(device: torch.device, threads: int) -> None:
    """Process-wide settings for ``device``."""
    torch.set_num_threads(threads)
    if device.type == "cpu":
        keep_freed_memory()
    if device.type == "cuda":
        # TF32 keeps fp32's range with a 10-bit mantissa; the fp32 parts (optimiser, loss) run faster.
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context of the forward pass (weights and optimiser state stay fp32)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fused_adamw(device: torch.device) -> bool:
    # One kernel for the whole AdamW update; only worth it (and only tested) on CUDA.
    return device.type == "cuda"
