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
import time
from dataclasses import asdict
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
from workflow_scripts.train.cell_config import SamplesConfig, parse_flags

SPLITS = ("train", "val", "test")
# Evaluation runs at most this many floats of the widest activation at a time (64 MiB in fp32).
EVAL_ACTIVATIONS = 1 << 24
CURVE_COLUMNS = ["step", "samples", "flops", "train_loss", "eval_loss", "lr", "eval_accuracy"]


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


class SamplesRun:
    """One samples cell's run: its data on the device, model and optimiser, and where it stands.

    Built in the order a run starts (``open_inputs``, ``build_model``), so the RNG draws
    and checks come in the same order on every run and every resume.
    """

    def __init__(self, cfg: SamplesConfig, checkpointer: Checkpointer | None) -> None:
        self.started = time.perf_counter()
        self.cfg, self.checkpointer = cfg, checkpointer
        self.open_inputs()
        self.build_model()

    def open_inputs(self) -> None:
        """The splits, checked before any training, and the device with everything resident on it."""
        cfg = self.cfg
        self.data = {split: read_split(cfg.data, split) for split in SPLITS}
        train_x, train_y, train_meta = self.data["train"]
        check(cfg, len(train_x))
        for split in SPLITS:
            check_targets(self.data[split][1], self.data[split][2], split)
        self.net_cfg = model_config(cfg, train_meta, train_y)
        self.device = device = devices.choose_device(cfg.device)
        self.precision = devices.choose_precision(cfg.precision, device)
        self.steps_per_epoch = cfg.steps_per_epoch()
        self.steps = cfg.epochs * self.steps_per_epoch
        self.schedule = cfg.schedule_for(self.steps)
        devices.configure(device, cfg.threads)
        self.autocast = functools.partial(devices.autocast, device, self.precision)
        # Everything resident on the device: the cell's D samples and the whole val and test splits.
        subset = train_subset(len(train_x), cfg.samples, cfg.seed)
        # (D, *x_shape), (D, …)
        self.x_d, self.y_d = to_device(train_x[subset], device), to_device(train_y[subset], device)
        self.val_x, self.val_y = (to_device(a, device) for a in self.data["val"][:2])
        self.test_x, self.test_y = (to_device(a, device) for a in self.data["test"][:2])
        self.eval_batch = max(1, EVAL_ACTIVATIONS // widest_activation(self.net_cfg))

    def build_model(self) -> None:
        """Model and optimiser from the seed, and the state resumed from a checkpoint."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.model = Net(self.net_cfg).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        self.progress = self.checkpointer.resume(self.model, self.optimizer, self.device) if self.checkpointer \
            else Progress()
        self.evals = set(eval_steps(self.steps, cfg.eval_points))
        self.per_sample = training_flops(self.net_cfg, 1)["flops_per_sample"]
        self.order, self.order_epoch = None, -1

    def record_eval(self, step: int) -> bool:
        """Append the curve row if this step is an evaluation point; says whether it was."""
        curve, recent = self.progress.curve, self.progress.recent
        # A resumed run starts at a step whose evaluation is already in the curve.
        if step not in self.evals or (curve and curve[-1]["step"] == step):
            return False
        eval_loss, eval_accuracy = evaluate(self.model, self.val_x, self.val_y, self.autocast, self.eval_batch)
        seen = self.cfg.samples_seen(step)
        curve.append({
            "step": step, "samples": seen, "flops": seen * self.per_sample,
            "train_loss": float(np.mean(recent)) if recent else float("nan"),
            "eval_loss": eval_loss, "lr": self.schedule.lr(min(step, self.steps - 1)),
            "eval_accuracy": eval_accuracy,
        })
        recent.clear()
        return True

    def checkpoint(self, step: int, at_eval: bool) -> None:
        """Save the checkpoint if it is due; after a stop signal, save it and raise ``Stopped``."""
        checkpointer, progress = self.checkpointer, self.progress
        if not (checkpointer and checkpointer.due(step, at_eval=at_eval)):
            return
        progress.step = step
        progress.wall_seconds += time.perf_counter() - self.started
        self.started = time.perf_counter()
        checkpointer.save(self.model, self.optimizer, progress)
        if checkpointer.signum is not None:
            raise Stopped(checkpointer.signum, checkpointer.path, step, self.steps)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's batch: all D samples (full batch), or its slice of the epoch's order."""
        cfg = self.cfg
        if cfg.batch() >= cfg.samples:
            return self.x_d, self.y_d
        epoch, within = divmod(step, self.steps_per_epoch)
        if epoch != self.order_epoch:
            self.order, self.order_epoch = to_device(epoch_order(cfg.samples, cfg.seed, epoch), self.device), epoch
        idx = self.order[within * cfg.batch() : (within + 1) * cfg.batch()]
        return self.x_d[idx], self.y_d[idx]

    def train_step(self, step: int) -> float:
        """One optimiser step; returns the batch's loss. A non-finite loss is returned without an update."""
        t0 = time.perf_counter()
        set_lr(self.optimizer, self.schedule.lr(step))
        xb, yb = self.batch(step)
        with self.autocast():
            _, loss = self.model(xb, yb)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            return loss_value
        update(self.model, self.optimizer, loss, self.cfg.grad_clip)
        self.progress.recent.append(loss_value)
        self.progress.train_seconds += time.perf_counter() - t0
        return loss_value

    def metrics(self, step: int, status: str) -> dict:
        """The cell's metrics.json record (GUIDE section 3), its test numbers measured here."""
        cfg, net_cfg, progress = self.cfg, self.net_cfg, self.progress
        ok = status == "ok"
        final = progress.curve[-1] if ok else None
        test_loss, test_accuracy = (evaluate(self.model, self.test_x, self.test_y, self.autocast, self.eval_batch)
                                    if ok else (None, None))
        seen = cfg.samples_seen(step)
        return {
            **cfg.identity(status),
            "model_config": net_cfg.to_dict(),
            **count_parameters(net_cfg),
            "D": seen,
            "D_unique": cfg.samples,
            "epochs": cfg.epochs,
            **training_flops(net_cfg, seen),
            **final_losses(progress.curve, ok),
            "test_loss": test_loss,
            "val_accuracy": final["eval_accuracy"] if final else None,
            "test_accuracy": test_accuracy,
            "optimal_loss": self.data["val"][2].get("optimal_loss"),
            "steps": step,
            "wall_time_s": progress.wall_seconds + time.perf_counter() - self.started,
            "samples_per_s": seen / progress.train_seconds if progress.train_seconds else None,
            "provenance": provenance(
                config=asdict(cfg),
                device=str(self.device),
                precision=self.precision,
                torch_threads=torch.get_num_threads(),
                resumed_from_steps=progress.resumed_from,
                forward_flop_terms=flop_terms(net_cfg),
                data_sha256={split: self.data[split][2].get("sha256") for split in SPLITS},
                data_source=self.data["train"][2].get("source"),
            ),
        }


def train(cfg: SamplesConfig, checkpointer: Checkpointer | None = None) -> tuple[dict, list[dict]]:
    """Train the cell; returns its metrics record and learning curve.

    Only the checkpoint is written, and only with a ``checkpointer``: then the run resumes
    from it, saves it as the checkpointer decides, and raises ``Stopped`` after saving when a
    stop signal has arrived.
    """
    run = SamplesRun(cfg, checkpointer)
    step, status = run.progress.step, "ok"
    while True:
        at_eval = run.record_eval(step)
        if step == run.steps:
            break
        run.checkpoint(step, at_eval)
        if not math.isfinite(run.train_step(step)):
            status = "diverged"  # the study goes on; the fits exclude this cell and say why
            break
        step += 1
    return run.metrics(step, status), run.progress.curve


def curve_csv(curve: list[dict]) -> str:
    # eval_accuracy None (regression) is written empty.
    return csv_text(curve, CURVE_COLUMNS)


def parse_args(argv: list[str] | None = None) -> SamplesConfig:
    return parse_flags(SamplesConfig, argv, __doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    gpu_slots.claim_or_exit(cfg.gpus)
    checkpointer, metrics, curve = run_cell(train, cfg, cfg.checkpoint or default_path(cfg.metrics))
    write_cell(cfg, checkpointer, metrics, curve_csv(curve))


if __name__ == "__main__":
    from workflow_scripts import jobs  # a failure ends in one line (traceback in the log); success skips teardown

    jobs.run(main)
