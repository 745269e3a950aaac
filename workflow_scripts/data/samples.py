"""Samples datasets: fixed-shape inputs and targets instead of a token stream.

Three kinds (the outputs of rule prepare_samples in rules/data.smk), each written as
``{split}.x.npy``, ``{split}.y.npy`` and ``{split}.json`` for train, val, test:

- ``sine``: regression y = sin x + noise·ε, the toy problem of the scaling-law
  blog study (a small tanh MLP fit on y = sin x); the MSE floor is noise².
- ``mnist1d``: the 10-class MNIST-1D signals of Greydanus & Kobak (2020),
  generated offline with the ``mnist1d`` package (never its downloading
  ``get_dataset``).
- image tables (``image_column`` set): MNIST-like 28×28 greyscale images from
  local parquet/arrow files or the hub, see ``samples_images``.

Every split comes from its own random stream (numpy ``SeedSequence.spawn``), so
asking for more training samples leaves val and test as they were.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import tempfile
from typing import Iterator

import numpy as np

from workflow_scripts.data import samples_images
from workflow_scripts.data.samples_files import PARTS, SPLITS, sample_counts, staged, write_metas
from workflow_scripts.plan.grid import SAMPLE_GENERATORS as GENERATORS

# Counts used when samples.<split> is 0: the blog's 2,048 sine points (val/test
# half that), and MNIST-1D's original 4,000 train / 1,000 test (plus a val).
DEFAULT_SAMPLES = {
    "sine": {"train": 2048, "val": 1024, "test": 1024},
    "mnist1d": {"train": 4000, "val": 1000, "test": 1000},
}
SINE_DEFAULTS = {"x_min": -2 * math.pi, "x_max": 2 * math.pi, "noise": 0.0, "seed": 0}
# Keys of mnist1d.data.get_dataset_args a config may set. Left out: num_samples and
# train_split (set from samples), shuffle_seq (its permutation would differ per split
# seed), final_seq_length and template_len (the contract fixes x_shape [40]).
MNIST1D_KEYS = (
    "seed", "scale_coeff", "max_translation", "corr_noise_scale", "iid_noise_scale", "shear_scale"
)


def prepare_samples(spec: dict, out_dir: str | os.PathLike) -> dict:
    """Write the nine samples files of one dataset into ``out_dir``; return the train meta.

    Nothing is written unless every split succeeds.
    """
    source = spec.get("source", "generator")
    if spec.get("image_column"):
        if source not in ("local", "hf"):
            raise ValueError(
                f"dataset source = {source!r} with image_column {spec['image_column']!r}: "
                "expected local or hf (image tables)"
            )
        return samples_images.prepare_images(spec, out_dir)
    generator = spec.get("generator", "hmm_language")
    if source != "generator" or generator not in GENERATORS:
        raise ValueError(
            f"dataset source = {source!r}, generator = {generator!r}: expected source generator with "
            f"generator one of {list(GENERATORS)}, or an image_column (not a samples dataset)"
        )
    counts = sample_counts(spec, DEFAULT_SAMPLES[generator])
    if generator == "sine":
        arrays, info = sine(spec, counts)
    else:
        arrays, info = mnist1d(spec, counts)
    with staged(out_dir) as paths:
        for split in SPLITS:
            for part, array in zip(PARTS, arrays[split]):
                np.save(paths[split, part], array)
    return write_metas(out_dir, {s: len(arrays[s][1]) for s in SPLITS}, info, spec)


def split_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """One independent seed sequence per split, each reproducible on its own."""
    return dict(zip(SPLITS, np.random.SeedSequence(seed).spawn(len(SPLITS))))


def sine(spec: dict, counts: dict[str, int]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """x uniform in [x_min, x_max], y = sin x + noise·ε, ε ~ N(0, 1); float32 (n, 1) each."""
    settings = {**SINE_DEFAULTS, **spec.get("sine", {})}
    unknown = sorted(set(settings) - set(SINE_DEFAULTS))
    if unknown:
        raise ValueError(f"dataset sine keys {unknown}: expected only {list(SINE_DEFAULTS)}")
    x_min, x_max, noise = float(settings["x_min"]), float(settings["x_max"]), float(settings["noise"])
    if not x_min < x_max:
        raise ValueError(f"dataset sine.x_max = {x_max}: expected > x_min = {x_min}")
    if noise < 0:
        raise ValueError(f"dataset sine.noise = {noise}: expected >= 0")
    arrays = {}
    for split, stream in split_streams(int(settings["seed"])).items():
        # Inputs and noise from separate child streams: the first k samples are the
        # same whatever the split's size.
        x_seed, eps_seed = stream.spawn(2)
        n = counts[split]
        x = np.random.default_rng(x_seed).uniform(x_min, x_max, size=(n, 1)).astype(np.float32)
        eps = np.random.default_rng(eps_seed).standard_normal(size=(n, 1))
        # sin of the stored float32 x, so noise² is the floor for the inputs a model sees.
        y = (np.sin(x.astype(np.float64)) + noise * eps).astype(np.float32)
        arrays[split] = (x, y)
    info = {
        "task": "regression",
        "x_scale": 1.0,
        "n_classes": None,
        # Bayes-optimal predictor E[y|x] = sin x leaves the noise: MSE floor σ².
        "optimal_loss": noise**2,
        "source": {"source": "generator", "generator": "sine", "sine": settings},
    }
    return arrays, info


def mnist1d(spec: dict, counts: dict[str, int]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """MNIST-1D signals, float32 (n, 40), with int64 labels 0-9; one package call per split."""
    settings = {"seed": 0, **spec.get("mnist1d", {})}
    unknown = sorted(set(settings) - set(MNIST1D_KEYS))
    if unknown:
        raise ValueError(f"dataset mnist1d keys {unknown}: expected only {list(MNIST1D_KEYS)}")
    make_dataset, get_dataset_args = _import_mnist1d()
    args = {**get_dataset_args(as_dict=True), **settings, "train_split": 1.0, "shuffle_seq": False}
    arrays, seeds = {}, {}
    for split, stream in split_streams(int(settings["seed"])).items():
        n = counts[split]
        seeds[split] = int(stream.generate_state(1)[0])
        # make_dataset draws num_samples // 10 per class then shuffles: ask for whole
        # classes and keep the first n. It standardises each call's signals as a whole.
        call = {**args, "num_samples": 10 * math.ceil(n / 10), "seed": seeds[split]}
        with _global_random_state():  # the package seeds numpy's and random's global state
            data = make_dataset(_ObjectView(call))
        arrays[split] = (data["x"][:n].astype(np.float32), data["y"][:n].astype(np.int64))
    args.pop("url", None)
    info = {
        "task": "classification",
        "x_scale": 1.0,
        "n_classes": 10,
        "optimal_loss": None,
        "source": {"source": "generator", "generator": "mnist1d", "mnist1d": settings,
                   "dataset_args": args, "split_seeds": seeds},
    }
    return arrays, info


def _import_mnist1d():
    # Importing mnist1d loads matplotlib, which wants a writable config folder.
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mplconfig-"))
    from mnist1d.data import get_dataset_args, make_dataset  # never get_dataset: it downloads

    return make_dataset, get_dataset_args


class _ObjectView:
    """The attribute-access args object make_dataset expects."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


@contextlib.contextmanager
def _global_random_state() -> Iterator[None]:
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
