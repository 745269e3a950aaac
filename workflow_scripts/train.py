"""Train one cell of the grid: one model size, one token budget, one seed.

Run by hand or from a Snakemake ``shell:`` as::

    python -m workflow_scripts.train --train-tokens results/data/synthetic/char/train.bin \\
        --val-tokens results/data/synthetic/char/val.bin --n-layer 2 --d-model 32 --n-head 2 \\
        --tokens 65536 --seed 0 --metrics out/metrics.json --curve out/curve.csv

The cell reads the first ``--tokens`` tokens of the training stream (so every
larger budget contains every smaller one), cuts them into windows of
``--context`` tokens, and makes ``--epochs`` shuffled passes over them with
AdamW under linear warmup then cosine decay to the last step.

The cell saves a checkpoint beside its metrics (every ``--checkpoint-every-s``
seconds, at evaluation points, and on SIGTERM or SIGUSR1, after which it exits
non-zero so Snakemake or SLURM retries it); the same command run again resumes
from it and ends with the numbers of an uninterrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import io as stdio
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from workflow_scripts import device as devices
from workflow_scripts.checkpoint import Checkpointer, Progress, Stopped, default_path
from workflow_scripts.io import atomic_write_json, atomic_write_text, provenance, read_json
from workflow_scripts.model import GPT, GPTConfig, count_parameters, training_flops
from workflow_scripts.resources import EVAL_BATCH, EVAL_LOGITS
from workflow_scripts.tokens import open_tokens


def _flag(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    train_tokens: str = _flag("", "training token file (.bin with its .json meta beside it)")
    val_tokens: str = _flag("", "validation token file")
    metrics: str = _flag("metrics.json", "where to write the cell's metrics")
    curve: str = _flag("curve.csv", "where to write the learning curve")
    experiment: str = _flag("", "experiment name, recorded in the metrics")
    model_name: str = _flag("", "model-size name, recorded in the metrics")
    data_name: str = _flag("", "data-size name, recorded in the metrics")
    n_layer: int = _flag(2, "transformer blocks")
    d_model: int = _flag(32, "residual stream width")
    n_head: int = _flag(2, "attention heads (must divide d_model)")
    d_ff: int = _flag(0, "MLP hidden width; 0 means 4 × d_model")
    context: int = _flag(64, "tokens per training window")
    dropout: float = _flag(0.0, "dropout probability")
    tokens: int = _flag(65536, "token budget D: the cell trains on the first D tokens of the stream")
    epochs: int = _flag(1, "passes over the D tokens")
    batch_size: int = _flag(16, "windows per optimiser step")
    lr: float = _flag(3e-3, "peak learning rate")
    min_lr_ratio: float = _flag(0.1, "final learning rate as a fraction of the peak")
    warmup_frac: float = _flag(0.05, "fraction of the steps spent in linear warmup")
    weight_decay: float = _flag(0.1, "AdamW decoupled weight decay on matrices")
    beta1: float = _flag(0.9, "AdamW beta1")
    beta2: float = _flag(0.95, "AdamW beta2")
    grad_clip: float = _flag(1.0, "gradient-norm clip; 0 disables")
    eval_tokens: int = _flag(16384, "validation tokens in the fixed evaluation sample")
    eval_points: int = _flag(8, "log-spaced evaluations along the run (learning curve)")
    seed: int = _flag(0, "seed for initialisation, data order and dropout")
    threads: int = _flag(1, "torch CPU threads")
    device: str = _flag("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    precision: str = _flag("auto", "auto (bf16 on CUDA, fp32 elsewhere), fp32 or bf16 autocast")
    checkpoint: str = _flag("", "checkpoint file; empty means <metrics stem>.checkpoint.pt beside the metrics")
    checkpoint_every_steps: int = _flag(0, "also checkpoint every this many steps; 0 disables")
    checkpoint_every_s: float = _flag(60.0, "checkpoint after this many seconds of wall time; 0 disables")

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            vocab_size=vocab_size,
            context=self.context,
            n_layer=self.n_layer,
            d_model=self.d_model,
            n_head=self.n_head,
            d_ff=self.d_ff or 4 * self.d_model,
            dropout=self.dropout,
        )


def lr_at(step: int, total_steps: int, peak: float, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup to ``peak``, then cosine decay to ``min_ratio × peak`` at the last step."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def eval_steps(total_steps: int, points: int) -> list[int]:
    """Steps (0 = before training) after which the validation loss is measured, log-spaced."""
    logspaced = np.geomspace(1, total_steps, num=max(points, 1))
    return sorted({0, total_steps, *(int(round(s)) for s in logspaced)})


def plan_steps(cfg: TrainConfig, available_tokens: int) -> int:
    """Optimiser steps of the cell; fails before any training when the budget cannot be met."""
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


def window_order(n_windows: int, epochs: int, seed: int) -> np.ndarray:
    """Window indices for every epoch, each epoch its own seeded permutation."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(n_windows) for _ in range(epochs)])


def get_batch(tokens: np.ndarray, starts: np.ndarray, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets for windows starting at ``starts``; reads only those rows."""
    rows = np.asarray(tokens[starts[:, None] + np.arange(context + 1)], dtype=np.int64)  # (B, T+1)
    rows = torch.from_numpy(rows)
    return rows[:, :-1], rows[:, 1:]


@torch.no_grad()
def evaluate(model: GPT, x: torch.Tensor, y: torch.Tensor, autocast=contextlib.nullcontext, batch_size: int = EVAL_BATCH) -> float:
    """Mean next-token cross-entropy (nats) over the fixed validation sample."""
    # Logits are windows x context x vocabulary floats: capped so that a GPT-2-sized
    # vocabulary does not cost gigabytes during evaluation.
    batch_size = max(1, min(batch_size, EVAL_LOGITS // (x.shape[1] * model.cfg.vocab_size)))
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        with autocast():
            _, loss = model(x[i : i + batch_size], y[i : i + batch_size])
        total += loss.item() * len(x[i : i + batch_size])
    model.train()
    return total / len(x)


def make_optimizer(model: GPT, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    # Decay matrices only; gains of LayerNorm are left alone (as nanoGPT does).
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=devices.fused_adamw(device))


def train(cfg: TrainConfig, checkpointer: Checkpointer | None = None) -> tuple[dict, list[dict]]:
    """Train the cell; returns its metrics record and learning curve.

    Only the checkpoint is written, and only with a ``checkpointer``: then the
    run resumes from it, saves it as the checkpointer decides, and raises
    ``Stopped`` after saving when a stop signal has arrived.
    """
    started = time.perf_counter()
    device = devices.choose_device(cfg.device)
    precision = devices.choose_precision(cfg.precision, device)
    devices.configure(device, cfg.threads)
    autocast = functools.partial(devices.autocast, device, precision)
    train_meta = read_json(cfg.train_tokens.removesuffix(".bin") + ".json")
    val_meta = read_json(cfg.val_tokens.removesuffix(".bin") + ".json")
    train_stream, val_stream = open_tokens(cfg.train_tokens), open_tokens(cfg.val_tokens)
    model_cfg = cfg.model_config(int(train_meta["vocab_size"]))
    steps = plan_steps(cfg, len(train_stream))
    n_eval = min(cfg.eval_tokens, len(val_stream) - 1) // cfg.context
    if n_eval < 1:
        raise ValueError(f"validation split has {len(val_stream)} tokens, fewer than one window of {cfg.context}")

    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    val_x, val_y = (t.to(device) for t in get_batch(val_stream, np.arange(n_eval) * cfg.context, cfg.context))
    order = window_order(cfg.tokens // cfg.context, cfg.epochs, cfg.seed)
    warmup = max(1, int(cfg.warmup_frac * steps))
    evals = set(eval_steps(steps, cfg.eval_points))
    flops = training_flops(model_cfg, 1)["flops_per_token"]
    tokens_per_step = cfg.batch_size * cfg.context
    progress = checkpointer.resume(model, optimizer, device) if checkpointer else Progress()
    curve, step = progress.curve, progress.step

    status = "ok"
    while True:
        # A resumed run starts at a step whose evaluation is already in the curve.
        if step in evals and not (curve and curve[-1]["step"] == step):
            curve.append({
                "step": step,
                "tokens": step * tokens_per_step,
                "flops": step * tokens_per_step * flops,
                "train_loss": float(np.mean(progress.recent)) if progress.recent else float("nan"),
                "eval_loss": evaluate(model, val_x, val_y, autocast),
                "lr": lr_at(min(step, steps - 1), steps, cfg.lr, warmup, cfg.min_lr_ratio),
            })
            progress.recent = []
        if step == steps:
            break
        if checkpointer and checkpointer.due(step, at_eval=step in evals):
            progress.step = step
            progress.wall_seconds += time.perf_counter() - started
            started = time.perf_counter()
            checkpointer.save(model, optimizer, progress)
            if checkpointer.signum is not None:
                raise Stopped(checkpointer.signum, checkpointer.path, step, steps)
        t0 = time.perf_counter()
        lr = lr_at(step, steps, cfg.lr, warmup, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        starts = order[step * cfg.batch_size : (step + 1) * cfg.batch_size] * cfg.context
        x, y = (t.to(device) for t in get_batch(train_stream, starts, cfg.context))
        with autocast():
            _, loss = model(x, y)
        if not torch.isfinite(loss):
            status = "diverged"  # the study goes on; the fits exclude this cell and say why
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        progress.recent.append(loss.item())
        progress.train_seconds += time.perf_counter() - t0
        step += 1

    trained_steps = step
    tokens_trained = trained_steps * tokens_per_step
    eval_losses = [row["eval_loss"] for row in curve if math.isfinite(row["eval_loss"])]
    final = curve[-1] if status == "ok" else None
    metrics = {
        "schema_version": 1,
        "experiment": cfg.experiment,
        "model": cfg.model_name,
        "data": cfg.data_name,
        "seed": cfg.seed,
        "status": status,
        "model_config": model_cfg.to_dict(),
        **count_parameters(model_cfg),
        "D": tokens_trained,
        "D_unique": cfg.tokens,
        "epochs": cfg.epochs,
        **training_flops(model_cfg, tokens_trained),
        "val_loss": final["eval_loss"] if final else None,
        "val_loss_best": min(eval_losses) if eval_losses else None,
        "train_loss": final["train_loss"] if final else None,
        "optimal_loss": val_meta.get("optimal_loss_per_token"),
        "steps": trained_steps,
        "wall_time_s": progress.wall_seconds + time.perf_counter() - started,
        "tokens_per_s": tokens_trained / progress.train_seconds if progress.train_seconds else None,
        "provenance": provenance(
            config=asdict(cfg),
            device=str(device),
            precision=precision,
            torch_threads=torch.get_num_threads(),
            resumed_from_steps=progress.resumed_from,
            train_tokens_sha256=train_meta.get("sha256"),
            val_tokens_sha256=val_meta.get("sha256"),
        ),
    }
    return metrics, curve


def curve_csv(curve: list[dict]) -> str:
    buffer = stdio.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["step", "tokens", "flops", "train_loss", "eval_loss", "lr"])
    writer.writeheader()
    writer.writerows(curve)
    return buffer.getvalue()


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in fields(TrainConfig):
        parser.add_argument(
            "--" + f.name.replace("_", "-"), type=type(f.default), default=f.default,
            help=f"{f.metadata['help']} (default: {f.default})",
        )
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    checkpointer = Checkpointer(cfg.checkpoint or default_path(cfg.metrics), asdict(cfg),
                                cfg.checkpoint_every_steps, cfg.checkpoint_every_s)
    checkpointer.install_signal_handlers()
    try:
        metrics, curve = train(cfg, checkpointer)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    except Stopped as stop:
        print(stop, file=sys.stderr)
        sys.exit(stop.exit_code)
    # The curve first, metrics.json last: its presence marks a finished cell, and the checkpoint goes.
    atomic_write_text(cfg.curve, curve_csv(curve))
    atomic_write_json(cfg.metrics, metrics)
    checkpointer.remove()
    print(f"{cfg.experiment} {cfg.model_name} {cfg.data_name} seed={cfg.seed}: "
          f"status={metrics['status']} val_loss={metrics['val_loss']} in {metrics['wall_time_s']:.1f}s")

if __name__ == "__main__":
    main()
