"""The samples contract shared by every samples dataset (workflow_scripts.data.samples for the
generators, workflow_scripts.data.samples_images for image tables): counts per split, the six
``{split}.{x,y}.npy`` files written together or not at all, and each split's ``{split}.json``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from workflow_scripts.data.download import sha256_file
from workflow_scripts.io import atomic_path, atomic_write_json, provenance

FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")
PARTS = ("x", "y")


def sample_counts(spec: dict, defaults: dict[str, int]) -> dict[str, int]:
    """Samples per split: ``spec['samples']``, where 0 (or absent) takes ``defaults``."""
    asked = spec.get("samples", {})
    counts = {}
    for split in SPLITS:
        n = asked.get(split, 0) or defaults.get(split, 0)
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"dataset samples.{split} = {n!r}: expected an integer >= 0")
        counts[split] = n
    return counts


@contextlib.contextmanager
def staged(out_dir: str | os.PathLike) -> Iterator[dict[tuple[str, str], Path]]:
    """Temporary paths for the six ``.npy`` files, moved into place together only if
    the block succeeds (on an error none of them is left behind)."""
    out_dir = Path(out_dir)
    with contextlib.ExitStack() as stack:
        yield {
            (split, part): stack.enter_context(atomic_path(out_dir / f"{split}.{part}.npy", suffix=".npy"))
            for split in SPLITS
            for part in PARTS
        }


def write_metas(out_dir: str | os.PathLike, counts: dict[str, int], info: dict[str, Any], spec: dict) -> dict:
    """The ``{split}.json`` of each split, from the written arrays; returns train's."""
    out_dir = Path(out_dir)
    metas = {}
    for split in SPLITS:
        x = np.load(out_dir / f"{split}.x.npy", mmap_mode="r")
        y = np.load(out_dir / f"{split}.y.npy", mmap_mode="r")
        metas[split] = {
            "format_version": FORMAT_VERSION,
            "kind": "samples",
            "task": info["task"],
            "split": split,
            "n": counts[split],
            "x_shape": list(x.shape[1:]),
            "x_dtype": str(x.dtype),
            "y_dtype": str(y.dtype),
            "x_scale": info["x_scale"],
            "n_classes": info["n_classes"],
            "optimal_loss": info["optimal_loss"],
            # Of the .npy files as written (header included).
            "sha256": {part: sha256_file(out_dir / f"{split}.{part}.npy") for part in PARTS},
            "source": {**info["source"], "provenance": provenance(config=spec)},
        }
        del x, y
        atomic_write_json(out_dir / f"{split}.json", metas[split])
    return metas["train"]
