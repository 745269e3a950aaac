"""Train one cell of the grid: one model size, one token budget, one seed.

Run by hand or from a Snakemake ``shell:`` as::

    python -m workflow_scripts.train --train-tokens results/data/synthetic/char/train.bin \\
        --val-tokens results/data/synthetic/char/val.bin --n-layer 2 --d-model 32 --n-head 2 \\
        --tokens 65536 --seed 0 --metrics out/metrics.json --curve out/curve.csv

The training split is cut into windows of ``--context`` tokens, shuffled once
per seed; the cell reads the first ``--tokens`` tokens of that stream (so every
larger budget's data, in order, starts with every smaller one's) and makes
``--epochs`` passes over them with AdamW under the ``--schedule``
(workflow_scripts/schedule.py).

Under WSD a cell may start from a branch checkpoint (``--branch-from``) written
by its (model, seed)'s stable phase, a run of the largest budget's cell
(``--tokens``) up to its cooldown with ``--branch-tokens`` listing every budget:
the stable phase saves each budget's state where its cooldown starts, and that
cell then trains only its cooldown, ending with the numbers of a cell trained
alone.

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
from pathlib import Path

import numpy as np
import torch

from workflow_scripts import device as devices
from workflow_scripts import gpu_slots
from workflow_scripts.checkpoint import Checkpointer, Progress, Stopped, default_path
from workflow_scripts.io import atomic_write_json, atomic_write_text, provenance, read_json
from workflow_scripts.model import GPT, GPTConfig, count_parameters, training_flops
from workflow_scripts.resources import EVAL_BATCH, EVAL_LOGITS
# Re-exported: the plan of a cell's steps lives in schedule.py.
from workflow_scripts.schedule import (  # noqa: F401
    Schedule, Track, branch_tracks, eval_steps, lr_at, make_schedule, plan_steps, window_order,
)
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
    compute_budget: float = _flag(0.0, "IsoFLOP budget C of the cell, recorded as C_budget; 0 for none")
    epochs: int = _flag(1, "passes over the D tokens")
    batch_size: int = _flag(16, "windows per optimiser step")
    lr: float = _flag(3e-3, "peak learning rate")
    schedule: str = _flag("cosine", "learning-rate schedule after warmup: cosine or wsd (warmup-stable-decay)")
    min_lr_ratio: float = _flag(0.1, "final learning rate as a fraction of the peak")
    warmup_frac: float = _flag(0.05, "fraction of the steps spent in linear warmup (when warmup-steps is 0)")
    warmup_steps: int = _flag(0, "linear warmup steps whatever the cell's length; 0 uses warmup-frac")
    cooldown_frac: float = _flag(0.2, "wsd: fraction of the steps spent in the (1 - sqrt) cooldown")
    weight_decay: float = _flag(0.1, "AdamW decoupled weight decay on matrices")
    beta1: float = _flag(0.9, "AdamW beta1")
    beta2: float = _flag(0.95, "AdamW beta2")
    grad_clip: float = _flag(1.0, "gradient-norm clip; 0 disables")
    eval_tokens: int = _flag(16384, "validation tokens in the fixed evaluation sample")
    eval_points: int = _flag(8, "log-spaced evaluations along the run (learning curve)")
    seed: int = _flag(0, "seed for initialisation, data order and dropout")
    threads: int = _flag(1, "torch CPU threads")
    device: str = _flag("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda or mps")
    gpus: int = _flag(0, "GPUs to claim on a shared machine before CUDA starts (workflow_scripts/gpu_slots.py); 0 claims none")
    precision: str = _flag("auto", "auto (bf16 on CUDA, fp32 elsewhere), fp32 or bf16 autocast")
    checkpoint: str = _flag("", "checkpoint file; empty means <metrics stem>.checkpoint.pt beside the metrics")
    checkpoint_every_steps: int = _flag(0, "also checkpoint every this many steps; 0 disables")
    checkpoint_every_s: float = _flag(60.0, "checkpoint after this many seconds of wall time; 0 disables")
    branch_from: str = _flag("", "wsd: start from this branch checkpoint of a stable phase (train the cooldown)")
    branch_tokens: str = _flag("", "wsd stable phase: comma-separated budgets (the largest is --tokens) to branch")
    branch_dir: str = _flag("", "wsd stable phase: folder of the branch checkpoints, <tokens>.pt each")

    def schedule_for(self, steps: int) -> Schedule:
        return make_schedule(self.schedule, steps, self.lr, self.min_lr_ratio, self.warmup_frac,
                             self.warmup_steps, self.cooldown_frac)

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
    run resumes from it (or starts from ``--branch-from``), saves it as the
    checkpointer decides, and raises ``Stopped`` after saving when a stop
    signal has arrived. With ``--branch-tokens`` it is a stable phase instead:
    it writes the branch checkpoints and returns a summary and no curve.
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
    if cfg.branch_from and not Path(cfg.branch_from).exists():
        raise FileNotFoundError(f"branch checkpoint {cfg.branch_from} does not exist: run the stable phase first")

    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    val_x, val_y = (t.to(device) for t in get_batch(val_stream, np.arange(n_eval) * cfg.context, cfg.context))
    order = window_order(cfg.tokens // cfg.context, cfg.epochs, cfg.seed, (len(train_stream) - 1) // cfg.context)
    flops = training_flops(model_cfg, 1)["flops_per_token"]
    tokens_per_step = cfg.batch_size * cfg.context
    progress = checkpointer.resume(model, optimizer, device, cfg.branch_from) if checkpointer else Progress()
    schedule = cfg.schedule_for(steps)
    if cfg.branch_tokens:
        tracks = branch_tracks(cfg, progress, len(train_stream))
        schedule, stop = tracks[-1].schedule, tracks[-1].schedule.branch_step
        if any(t.schedule.branch_step <= progress.step and not t.branch.path.exists() for t in tracks):
            raise FileNotFoundError(f"stable phase checkpoint at step {progress.step} but branch checkpoints in "
                                    f"{cfg.branch_dir} are gone: delete {checkpointer.path} to start again")
    else:
        tracks = [Track(schedule, set(eval_steps(steps, cfg.eval_points)), progress.curve, progress.recent)]
        stop = steps
    step = progress.step

    status = "ok"
    while True:
        for track in tracks:
            if track.branch is not None and step == track.schedule.branch_step:
                track.branch.save(model, optimizer, Progress(
                    step, track.curve, track.recent, progress.train_seconds,
                    progress.wall_seconds + time.perf_counter() - started, inherited_steps=step))
        # A resumed run starts at a step whose evaluation is already in the curve.
        due = [t for t in tracks if step in t.evals and step <= t.rows_until
               and not (t.curve and t.curve[-1]["step"] == step)]
        eval_loss = evaluate(model, val_x, val_y, autocast) if due else None
        for track in due:
            track.curve.append({
                "step": step,
                "tokens": step * tokens_per_step,
                "flops": step * tokens_per_step * flops,
                "train_loss": float(np.mean(track.recent)) if track.recent else float("nan"),
                "eval_loss": eval_loss,
                "lr": track.schedule.lr(min(step, track.schedule.steps - 1)),
            })
            track.recent.clear()
        if step == stop:
            break
        if checkpointer and checkpointer.due(step, at_eval=bool(due)):
            progress.step = step
            progress.wall_seconds += time.perf_counter() - started
            started = time.perf_counter()
            checkpointer.save(model, optimizer, progress)
            if checkpointer.signum is not None:
                raise Stopped(checkpointer.signum, checkpointer.path, step, stop)
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr(step)
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
        loss_value = loss.item()
        for track in tracks:
            if track.branch is None or step < track.schedule.branch_step:
                track.recent.append(loss_value)
        progress.train_seconds += time.perf_counter() - t0
        step += 1

    if cfg.branch_tokens:
        if status != "ok":
            raise ValueError(f"the stable phase diverged at step {step}; its cells cannot branch from it "
                             "(set training.branch: false to train them alone)")
        return {"branches": {t.branch.path.name: t.schedule.branch_step for t in tracks}, "steps": step}, []
    trained_steps = step
    curve = progress.curve
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
        "C_budget": cfg.compute_budget or None,
        "steps": trained_steps,
        # A cell branched from a WSD stable phase inherits its first steps; D and C count them all.
        "steps_inherited": progress.inherited_steps,
        "steps_trained": trained_steps - progress.inherited_steps,
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
    try:
        gpu_slots.claim(cfg.gpus)  # before anything initialises CUDA; held until the process ends
    except gpu_slots.NoFreeGPU as error:
        sys.exit(f"error: {error}")
    # A stable phase keeps its own checkpoint among its branches: both go (or stay) together.
    path = cfg.checkpoint or (Path(cfg.branch_dir) / "stable.checkpoint.pt" if cfg.branch_tokens
                              else default_path(cfg.metrics))
    checkpointer = Checkpointer(path, asdict(cfg), cfg.checkpoint_every_steps, cfg.checkpoint_every_s)
    checkpointer.install_signal_handlers()
    try:
        metrics, curve = train(cfg, checkpointer)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    except Stopped as stop:
        print(stop, file=sys.stderr)
        sys.exit(stop.exit_code)
    if cfg.branch_tokens:
        checkpointer.remove()
        print(f"{cfg.experiment} {cfg.model_name} seed={cfg.seed}: stable phase of {metrics['steps']} steps, "
              f"branches at steps {metrics['branches']}")
        return
    # The curve first, metrics.json last: its presence marks a finished cell, and the checkpoint goes.
    atomic_write_text(cfg.curve, curve_csv(curve))
    atomic_write_json(cfg.metrics, metrics)
    checkpointer.remove()
    print(f"{cfg.experiment} {cfg.model_name} {cfg.data_name} seed={cfg.seed}: "
          f"status={metrics['status']} val_loss={metrics['val_loss']} in {metrics['wall_time_s']:.1f}s")

if __name__ == "__main__":
    main()
