"""Train one samples cell of the grid: an mlp or cnn, a sample budget D, one seed.

Run by hand or from a Snakemake ``shell:`` as::

    python -m workflow_scripts.train.samples_cell --data results/data/sine/samples --family mlp \\
        --n-layer 1 --width 64 --activation tanh --samples 2048 --epochs 500 --batch-size 0 \\
        --schedule constant --lr 0.01 --seed 0 --metrics out/metrics.json --curve out/curve.csv

Data order: the training split's sample indices are permuted once per seed and the cell
keeps the first ``--samples`` (D) of them, so every larger D contains every smaller one.
Each epoch visits those D in a fresh order drawn from (seed, epoch) alone, so a resumed run
rebuilds it from its step. An epoch is ceil(D / batch) steps, the last one short when the
batch does not divide D: every sample is seen once per epoch and D (samples seen) is exactly
samples × epochs. ``--batch-size 0`` is full batch (one step per epoch, no reshuffle: the
mean over the same D samples does not depend on their order).

Loss: mean squared error for regression, cross-entropy (nats) for classification; the
validation loss (and accuracy) is measured on the whole validation split at log-spaced
steps, the test loss once at the end. A non-finite training loss ends the cell with status
``diverged`` (its metrics still written). Checkpoints and stop signals work as in
``workflow_scripts.train.token_cell``: a stopped cell exits non-zero and its rerun resumes, ending with
the numbers of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from workflow_scripts.train import device as devices
from workflow_scripts.train import gpu_slots
from workflow_scripts.train.checkpoint import Checkpointer, Progress, Stopped, default_path, run_cell, write_cell
from workflow_scripts.models.families import (
    Net, NetConfig, count_parameters, flop_terms, loss_fn, training_flops, widest_activation,
)
from workflow_scripts.train.optim import final_losses, make_optimizer, set_lr, update
from workflow_scripts.io import csv_text, provenance, read_json
from workflow_scripts.train.schedule import eval_steps
from workflow_scripts.train.cell_config import CellFlags, flag, parse_flags

SPLITS = ("train", "val", "test")
# Evaluation runs at most this many floats of the widest activation at a time (64 MiB in fp32).
EVAL_ACTIVATIONS = 1 << 24
CURVE_COLUMNS = ["step", "samples", "flops", "train_loss", "eval_loss", "lr", "eval_accuracy"]


@dataclass
class SamplesConfig(CellFlags):
    """An mlp or cnn cell's flags: the shared ones (defaults of plain Adam at a constant rate) and its own."""

    data: str = flag("", "samples folder holding {train,val,test}.{x,y}.npy and .json meta")
    family: str = flag("mlp", "model family: mlp or cnn (workflow_scripts.models.families)")
    n_layer: int = flag(2, "hidden layers (mlp) or conv blocks (cnn)")
    width: int = flag(32, "hidden width (mlp) or channels of the first conv block, doubling per block (cnn)")
    activation: str = flag("relu", "activation: tanh, relu or gelu")
    samples: int = flag(1024, "sample budget D: the first D training samples of the seed's permutation")
    batch_size: int = flag(64, "samples per optimiser step; 0 means full batch (all D)")
    lr: float = flag(1e-3, "peak learning rate")
    schedule: str = flag("constant", "learning-rate schedule after warmup: constant, cosine or wsd")
    warmup_frac: float = flag(0.0, "fraction of the steps spent in linear warmup (when warmup-steps is 0)")
    weight_decay: float = flag(0.0, "AdamW decoupled weight decay on weight matrices and kernels; 0 is Adam")
    beta2: float = flag(0.999, "Adam beta2")
    grad_clip: float = flag(0.0, "gradient-norm clip; 0 disables")

    def batch(self) -> int:
        return self.samples if self.batch_size == 0 else min(self.batch_size, self.samples)

    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples / self.batch())

    def samples_seen(self, step: int) -> int:
        """Samples consumed by the first ``step`` steps (the last batch of an epoch may be short)."""
        epochs, within = divmod(step, self.steps_per_epoch())
        return epochs * self.samples + min(within * self.batch(), self.samples)


def read_split(folder: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """x, y (memory-mapped) and meta of one split of a samples folder."""
    folder = Path(folder)
    paths = [folder / f"{split}.{part}" for part in ("x.npy", "y.npy", "json")]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"samples folder {folder} lacks {path.name}: prepare the dataset first")
    meta = read_json(paths[2])
    if meta.get("kind") != "samples":
        raise ValueError(f"{paths[2]}: kind {meta.get('kind')!r}, expected 'samples'")
    x, y = np.load(paths[0], mmap_mode="r"), np.load(paths[1], mmap_mode="r")
    if len(x) != len(y) or list(x.shape[1:]) != list(meta["x_shape"]):
        raise ValueError(f"{folder}/{split}: x {x.shape} and y {y.shape} do not match "
                         f"meta x_shape {meta['x_shape']}")
    return x, y, meta


def check(cfg: SamplesConfig, n_train: int) -> None:
    """Fail in one line, before any training, on flags the cell cannot run with."""
    if cfg.samples < 1:
        raise ValueError(f"--samples {cfg.samples}: expected a positive sample budget")
    if cfg.samples > n_train:
        raise ValueError(f"--samples {cfg.samples} exceeds the training split ({n_train} samples) "
                         f"by {cfg.samples - n_train}: lower the data size or enlarge the split")
    if cfg.epochs < 1:
        raise ValueError(f"--epochs {cfg.epochs}: expected a positive integer")
    if cfg.batch_size < 0:
        raise ValueError(f"--batch-size {cfg.batch_size}: expected a positive integer, or 0 for full batch")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ValueError(f"--lr {cfg.lr}: expected a positive finite learning rate")
    if cfg.eval_points < 1:
        raise ValueError(f"--eval-points {cfg.eval_points}: expected a positive integer")


def check_targets(y: np.ndarray, meta: dict, split: str) -> None:
    """Class ids in [0, n_classes) of shape (n,), or regression targets of shape (n, k)."""
    if meta["task"] == "classification":
        if y.dtype != np.int64 or y.ndim != 1:
            raise ValueError(f"{split}.y.npy: {y.dtype} of shape {y.shape}, "
                             "expected int64 class ids of shape (n,)")
        if len(y) and not 0 <= int(y.min()) <= int(y.max()) < int(meta["n_classes"]):
            raise ValueError(f"{split}.y.npy: class ids span [{y.min()}, {y.max()}], "
                             f"expected [0, {meta['n_classes']}) (meta n_classes)")
    elif meta["task"] == "regression":
        if y.dtype != np.float32 or y.ndim != 2:
            raise ValueError(f"{split}.y.npy: {y.dtype} of shape {y.shape}, "
                             "expected float32 targets of shape (n, k)")
    else:
        raise ValueError(f"{split}.json: task {meta['task']!r}, expected 'regression' or 'classification'")


def model_config(cfg: SamplesConfig, meta: dict, y: np.ndarray) -> NetConfig:
    classes = meta["task"] == "classification"
    return NetConfig(
        family=cfg.family, in_shape=tuple(meta["x_shape"]),
        n_outputs=int(meta["n_classes"]) if classes else y.shape[1],
        n_layer=cfg.n_layer, width=cfg.width, activation=cfg.activation, dropout=cfg.dropout,
        x_scale=float(meta.get("x_scale", 1.0)),
    )


def train_subset(n_train: int, samples: int, seed: int) -> np.ndarray:
    """The cell's D training indices: a prefix of the seed's permutation of the split (nested in D)."""
    return np.random.default_rng(seed).permutation(n_train)[:samples]


def epoch_order(samples: int, seed: int, epoch: int) -> np.ndarray:
    """Positions within the D samples in the order of one epoch, a function of (seed, epoch) alone."""
    return np.random.default_rng([seed, epoch]).permutation(samples)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.array(array)).to(device)  # a copy: memory maps are read-only


@torch.no_grad()
def evaluate(model: Net, x: torch.Tensor, y: torch.Tensor, autocast=contextlib.nullcontext,
             batch_size: int = 1 << 30) -> tuple[float, float | None]:
    """Mean loss over the whole split, and accuracy for classifiers (None for regression)."""
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        with autocast():
            out, _ = model(xb)
        total += loss_fn(out, yb, reduction="sum").item()
        if yb.dtype == torch.int64:
            correct += int((out.argmax(dim=1) == yb).sum())
    model.train()
    return total / len(x), (correct / len(x) if y.dtype == torch.int64 else None)


def train(cfg: SamplesConfig, checkpointer: Checkpointer | None = None) -> tuple[dict, list[dict]]:
    """Train the cell; returns its metrics record and learning curve.

    Only the checkpoint is written, and only with a ``checkpointer``: then the run resumes
    from it, saves it as the checkpointer decides, and raises ``Stopped`` after saving when a
    stop signal has arrived.
    """
    started = time.perf_counter()
    data = {split: read_split(cfg.data, split) for split in SPLITS}
    train_x, train_y, train_meta = data["train"]
    check(cfg, len(train_x))
    for split in SPLITS:
        check_targets(data[split][1], data[split][2], split)
    net_cfg = model_config(cfg, train_meta, train_y)
    device = devices.choose_device(cfg.device)
    precision = devices.choose_precision(cfg.precision, device)
    steps_per_epoch = cfg.steps_per_epoch()
    steps = cfg.epochs * steps_per_epoch
    schedule = cfg.schedule_for(steps)
    devices.configure(device, cfg.threads)
    autocast = functools.partial(devices.autocast, device, precision)

    # Everything resident on the device: the cell's D samples and the whole val and test splits.
    subset = train_subset(len(train_x), cfg.samples, cfg.seed)
    x_d, y_d = to_device(train_x[subset], device), to_device(train_y[subset], device)  # (D, *x_shape), (D, …)
    val_x, val_y = (to_device(a, device) for a in data["val"][:2])
    test_x, test_y = (to_device(a, device) for a in data["test"][:2])
    eval_batch = max(1, EVAL_ACTIVATIONS // widest_activation(net_cfg))

    torch.manual_seed(cfg.seed)
    model = Net(net_cfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    progress = checkpointer.resume(model, optimizer, device) if checkpointer else Progress()
    evals = set(eval_steps(steps, cfg.eval_points))
    per_sample = training_flops(net_cfg, 1)["flops_per_sample"]
    batch, full = cfg.batch(), cfg.batch() >= cfg.samples
    curve, recent, step = progress.curve, progress.recent, progress.step
    order, order_epoch = None, -1

    status = "ok"
    while True:
        # A resumed run starts at a step whose evaluation is already in the curve.
        if step in evals and not (curve and curve[-1]["step"] == step):
            eval_loss, eval_accuracy = evaluate(model, val_x, val_y, autocast, eval_batch)
            seen = cfg.samples_seen(step)
            curve.append({
                "step": step, "samples": seen, "flops": seen * per_sample,
                "train_loss": float(np.mean(recent)) if recent else float("nan"),
                "eval_loss": eval_loss, "lr": schedule.lr(min(step, steps - 1)),
                "eval_accuracy": eval_accuracy,
            })
            recent.clear()
            at_eval = True
        else:
            at_eval = False
        if step == steps:
            break
        if checkpointer and checkpointer.due(step, at_eval=at_eval):
            progress.step = step
            progress.wall_seconds += time.perf_counter() - started
            started = time.perf_counter()
            checkpointer.save(model, optimizer, progress)
            if checkpointer.signum is not None:
                raise Stopped(checkpointer.signum, checkpointer.path, step, steps)
        t0 = time.perf_counter()
        set_lr(optimizer, schedule.lr(step))
        if full:
            xb, yb = x_d, y_d
        else:
            epoch, within = divmod(step, steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = to_device(epoch_order(cfg.samples, cfg.seed, epoch), device), epoch
            idx = order[within * batch : (within + 1) * batch]
            xb, yb = x_d[idx], y_d[idx]
        with autocast():
            _, loss = model(xb, yb)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            status = "diverged"  # the study goes on; the fits exclude this cell and say why
            break
        update(model, optimizer, loss, cfg.grad_clip)
        recent.append(loss_value)
        progress.train_seconds += time.perf_counter() - t0
        step += 1

    ok = status == "ok"
    final = curve[-1] if ok else None
    test_loss, test_accuracy = evaluate(model, test_x, test_y, autocast, eval_batch) if ok else (None, None)
    seen = cfg.samples_seen(step)
    metrics = {
        **cfg.identity(status),
        "model_config": net_cfg.to_dict(),
        **count_parameters(net_cfg),
        "D": seen,
        "D_unique": cfg.samples,
        "epochs": cfg.epochs,
        **training_flops(net_cfg, seen),
        **final_losses(curve, ok),
        "test_loss": test_loss,
        "val_accuracy": final["eval_accuracy"] if final else None,
        "test_accuracy": test_accuracy,
        "optimal_loss": data["val"][2].get("optimal_loss"),
        "steps": step,
        "wall_time_s": progress.wall_seconds + time.perf_counter() - started,
        "samples_per_s": seen / progress.train_seconds if progress.train_seconds else None,
        "provenance": provenance(
            config=asdict(cfg),
            device=str(device),
            precision=precision,
            torch_threads=torch.get_num_threads(),
            resumed_from_steps=progress.resumed_from,
            forward_flop_terms=flop_terms(net_cfg),
            data_sha256={split: data[split][2].get("sha256") for split in SPLITS},
            data_source=train_meta.get("source"),
        ),
    }
    return metrics, curve


def curve_csv(curve: list[dict]) -> str:
    # eval_accuracy None (regression) is written empty.
    return csv_text(curve, CURVE_COLUMNS)


def parse_args(argv: list[str] | None = None) -> SamplesConfig:
    return parse_flags(SamplesConfig, argv, __doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    try:
        gpu_slots.claim(cfg.gpus)  # before anything initialises CUDA; held until the process ends
    except gpu_slots.NoFreeGPU as error:
        sys.exit(f"error: {error}")
    checkpointer, metrics, curve = run_cell(train, cfg, cfg.checkpoint or default_path(cfg.metrics))
    write_cell(cfg, checkpointer, metrics, curve_csv(curve))


if __name__ == "__main__":
    from workflow_scripts import jobs  # a failure ends in one line (traceback in the log); success skips teardown

    jobs.run(main)
