"""Train one cell of the grid: one model size, one token budget, one seed.

Run by hand or from a Snakemake ``shell:`` as::

    python -m workflow_scripts.train.token_cell --train-tokens results/data/synthetic/char/train.bin \\
        --val-tokens results/data/synthetic/char/val.bin --n-layer 2 --d-model 32 --n-head 2 \\
        --tokens 65536 --seed 0 --metrics out/metrics.json --curve out/curve.csv

The training split is cut into windows of ``--context`` tokens, shuffled once
per seed; the cell reads the first ``--tokens`` tokens of that stream (so every
larger budget's data, in order, starts with every smaller one's) and makes
``--epochs`` passes over them with AdamW under the ``--schedule``
(``workflow_scripts.train.schedule``).

Under WSD a cell may start from a branch checkpoint (``--branch-from``) written
by its (model, seed)'s stable phase, a run of the largest budget's cell
(``--tokens``) up to its cooldown with ``--branch-tokens`` listing every budget:
the stable phase saves each budget's state where its cooldown starts, and that
cell then trains only its cooldown, ending with the numbers of a cell trained
alone (``workflow_scripts.train.branching``).

At the end it also measures the loss on fixed samples of the test split
(``--test-tokens``) and of a transfer set (``--transfer-tokens``: another
dataset's test split in the experiment's tokenizer), the latter at every
evaluation point too: Kaplan et al. (2020, sec. 3.2.2) find that the transfer
loss follows the in-distribution loss with a roughly constant offset, which the
learning curve's ``transfer_loss`` column lets one check.

Started by torchrun (``python -m workflow_scripts.train.ddp``), it trains data-parallel
with the numbers of a one-process run (``workflow_scripts.train.ddp``).

The cell saves a checkpoint beside its metrics (every ``--checkpoint-every-s``
seconds, at evaluation points, and on SIGTERM or SIGUSR1, after which it exits
non-zero so Snakemake or SLURM retries it); the same command run again resumes
from it and ends with the numbers of an uninterrupted run.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from workflow_scripts.data.tokens import open_tokens, verified_tokens
from workflow_scripts.io import csv_text, provenance, read_json
from workflow_scripts.models.transformer import GPT, count_parameters, training_flops
from workflow_scripts.train import ddp
from workflow_scripts.train import device as devices
from workflow_scripts.train import gpu_slots
from workflow_scripts.train.branching import Track, branch_tracks
from workflow_scripts.train.cell_config import TrainConfig, parse_flags
from workflow_scripts.train.checkpoint import Checkpointer, Progress, Stopped, default_path, run_cell, write_cell
from workflow_scripts.train.evaluation import eval_set, evaluate, get_batch
from workflow_scripts.train.optim import final_losses, make_optimizer, set_lr, update
from workflow_scripts.train.schedule import eval_steps, plan_steps, window_order

CURVE_COLUMNS = ["step", "tokens", "flops", "train_loss", "eval_loss", "lr", "transfer_loss"]


def train(cfg: TrainConfig, checkpointer: Checkpointer | None = None) -> tuple[dict, list[dict]]:
    """Train the cell; returns its metrics record and learning curve.

    Only the checkpoint is written, and only with a ``checkpointer``: then the
    run resumes from it (or starts from ``--branch-from``), saves it as the
    checkpointer decides, and raises ``Stopped`` after saving when a stop
    signal has arrived. With ``--branch-tokens`` it is a stable phase instead:
    it writes the branch checkpoints and returns a summary and no curve.
    """
    started = time.perf_counter()
    world, device_name = ddp.init(cfg.device)
    device = devices.choose_device(device_name)
    precision = devices.choose_precision(cfg.precision, device)
    devices.configure(device, cfg.threads)
    autocast = functools.partial(devices.autocast, device, precision)
    train_meta = read_json(cfg.train_tokens.removesuffix(".bin") + ".json")
    train_stream = open_tokens(cfg.train_tokens)
    model_cfg = cfg.model_config(int(train_meta["vocab_size"]))
    steps = plan_steps(cfg, len(train_stream))
    if cfg.batch_size % world.size:
        raise ValueError(f"batch size {cfg.batch_size} does not divide among {world.size} data-parallel "
                         f"processes: expected a multiple of {world.size}")
    # Fixed evaluation samples, each checked (size, vocabulary) before any training.
    sets = {name: eval_set(name, path, cfg.eval_tokens, cfg.context, model_cfg.vocab_size, device)
            for name, path in (("validation", cfg.val_tokens), ("test", cfg.test_tokens),
                               ("transfer", cfg.transfer_tokens)) if path}
    val, transfer = sets["validation"], sets.get("transfer")
    if cfg.branch_from and not Path(cfg.branch_from).exists():
        raise FileNotFoundError(f"branch checkpoint {cfg.branch_from} does not exist: run the stable phase first")

    torch.manual_seed(cfg.seed)
    model = GPT(model_cfg).to(device)
    optimizer = make_optimizer(model, cfg, device)
    order = window_order(cfg.tokens // cfg.context, cfg.epochs, cfg.seed, (len(train_stream) - 1) // cfg.context)
    flops = training_flops(model_cfg, 1)["flops_per_token"]
    tokens_per_step = cfg.batch_size * cfg.context
    progress = checkpointer.resume(model, optimizer, device, cfg.branch_from) if checkpointer else Progress()
    trained = ddp.wrap(model, world, device)  # after resuming: DDP starts every rank from rank 0's weights
    if cfg.compile:  # evaluation stays eager: it runs rarely, on batches of another shape
        trained = torch.compile(trained)
    share = slice(*world.share(cfg.batch_size))  # this rank's windows of each global batch
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
    agreed = None  # data-parallel: the stop signal the ranks agreed on at the last step
    while True:
        for track in tracks:
            if track.branch is not None and step == track.schedule.branch_step and world.main:
                track.branch.save(model, optimizer, Progress(
                    step, track.curve, track.recent, progress.train_seconds,
                    progress.wall_seconds + time.perf_counter() - started, inherited_steps=step))
        # A resumed run starts at a step whose evaluation is already in the curve.
        due = [t for t in tracks if step in t.evals and step <= t.rows_until
               and not (t.curve and t.curve[-1]["step"] == step)]
        eval_loss = evaluate(model, val.x, val.y, autocast, world=world) if due else None
        transfer_loss = evaluate(model, transfer.x, transfer.y, autocast, world=world) if due and transfer else None
        for track in due:
            track.curve.append({
                "step": step,
                "tokens": step * tokens_per_step,
                "flops": step * tokens_per_step * flops,
                "train_loss": float(np.mean(track.recent)) if track.recent else float("nan"),
                "eval_loss": eval_loss,
                "lr": track.schedule.lr(min(step, track.schedule.steps - 1)),
                "transfer_loss": transfer_loss,
            })
            track.recent.clear()
        if step == stop:
            break
        # One process stops as soon as it sees a signal; ranks stop on the one they agreed on.
        signum = (checkpointer.signum if world.size == 1 else agreed) if checkpointer else None
        if checkpointer and checkpointer.due(step, at_eval=bool(due), stop=signum is not None):
            progress.step = step
            progress.wall_seconds += time.perf_counter() - started
            started = time.perf_counter()
            if world.main:
                checkpointer.save(model, optimizer, progress)
            if signum is not None:
                world.barrier()  # the others wait for rank 0's checkpoint before they all exit
                raise Stopped(signum, checkpointer.path, step, stop)
        t0 = time.perf_counter()
        set_lr(optimizer, schedule.lr(step))
        starts = order[step * cfg.batch_size : (step + 1) * cfg.batch_size][share] * cfg.context
        x, y = (t.to(device) for t in get_batch(train_stream, starts, cfg.context))
        with autocast():
            _, loss = trained(x, y)
        # The ranks agree on the batch's mean loss and on a stop signal, so they break together.
        loss_value, agreed = world.agree(loss.item(), checkpointer.signum if checkpointer else None)
        if not math.isfinite(loss_value):
            status = "diverged"  # the study goes on; the fits exclude this cell and say why
            break
        update(model, optimizer, loss, cfg.grad_clip)
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
    final = curve[-1] if status == "ok" else None
    test = sets.get("test")
    test_loss = evaluate(model, test.x, test.y, autocast, world=world) if final and test else None
    metrics = {
        **cfg.identity(status),
        "model_config": model_cfg.to_dict(),
        **count_parameters(model_cfg),
        "D": tokens_trained,
        "D_unique": cfg.tokens,
        "epochs": cfg.epochs,
        **training_flops(model_cfg, tokens_trained),
        **final_losses(curve, status == "ok"),
        "test_loss": test_loss,
        "transfer_loss": final["transfer_loss"] if final and transfer else None,
        "transfer_dataset": (cfg.transfer_name or Path(cfg.transfer_tokens).stem) if transfer else None,
        "optimal_loss": val.meta.get("optimal_loss_per_token"),
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
            data_parallel_processes=world.size,
            resumed_from_steps=progress.resumed_from,
            train_tokens_sha256=train_meta.get("sha256"),
            **{f"{name}_tokens_sha256": s.meta.get("sha256") for name, s in sets.items() if name != "validation"},
            val_tokens_sha256=val.meta.get("sha256"),
        ),
    }
    return metrics, curve


def curve_csv(curve: list[dict]) -> str:
    # transfer_loss is empty without a transfer set (and in rows of checkpoints from before the column).
    return csv_text(curve, CURVE_COLUMNS)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    return parse_flags(TrainConfig, argv, __doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    try:
        if not ddp.under_torchrun():  # under torchrun the launcher (workflow_scripts/train/ddp.py) claimed them
            gpu_slots.claim(cfg.gpus)  # before anything initialises CUDA; held until the process ends
    except gpu_slots.NoFreeGPU as error:
        sys.exit(f"error: {error}")
    # A stable phase keeps its own checkpoint among its branches: both go (or stay) together.
    path = cfg.checkpoint or (Path(cfg.branch_dir) / "stable.checkpoint.pt" if cfg.branch_tokens
                              else default_path(cfg.metrics))
    checkpointer, metrics, curve = run_cell(train, cfg, path, cleanup=ddp.close)
    if "provenance" in metrics:  # what open_tokens checked before training: each file's hash and id range
        metrics["provenance"]["tokens_verified"] = verified_tokens()
    if int(os.environ.get("RANK", "0")) == 0:  # data-parallel: rank 0 writes the outputs
        write_outputs(cfg, checkpointer, metrics, curve)


def write_outputs(cfg: TrainConfig, checkpointer: Checkpointer, metrics: dict, curve: list[dict]) -> None:
    if cfg.branch_tokens:
        checkpointer.remove()
        print(f"{cfg.experiment} {cfg.model_name} seed={cfg.seed}: stable phase of {metrics['steps']} steps, "
              f"branches at steps {metrics['branches']}")
        return
    write_cell(cfg, checkpointer, metrics, curve_csv(curve))


if __name__ == "__main__":
    from workflow_scripts import jobs  # a failure ends in one line (traceback in the log); success skips teardown

    jobs.run(main)
