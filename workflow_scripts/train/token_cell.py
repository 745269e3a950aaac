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

With ``--noise-scale`` every curve row also carries the gradient noise scale B_simple at its
weights (``noise_scale``, in windows; ``workflow_scripts.train.noise_scale``), measured in the
training step that starts at the evaluation point, without changing the run's numbers.

The cell saves a checkpoint beside its metrics (every ``--checkpoint-every-s``
seconds, at evaluation points, and on SIGTERM or SIGUSR1, after which it exits
non-zero so Snakemake or SLURM retries it); the same command run again resumes
from it and ends with the numbers of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
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
from workflow_scripts.train import noise_scale as ns
from workflow_scripts.train.optim import final_losses, make_optimizer, set_lr, update
from workflow_scripts.train.schedule import eval_steps, plan_steps, window_order

CURVE_COLUMNS = ["step", "tokens", "flops", "train_loss", "eval_loss", "lr", "transfer_loss", "noise_scale"]


class TokenRun:
    """One token cell's run: its device, data, evaluation samples, model and optimiser, and where it stands.

    Built in the order a run starts (``open_inputs``, ``build_model``, ``plan_tracks``),
    so the RNG draws and checks come in the same order on every run and every resume.
    """

    def __init__(self, cfg: TrainConfig, checkpointer: Checkpointer | None) -> None:
        self.started = time.perf_counter()
        self.cfg, self.checkpointer = cfg, checkpointer
        self.open_inputs()
        self.build_model()
        self.plan_tracks()

    def open_inputs(self) -> None:
        """Device, training stream and fixed evaluation samples, each checked before any training."""
        cfg = self.cfg
        self.world, device_name = ddp.init(cfg.device)
        self.device = devices.choose_device(device_name)
        self.precision = devices.choose_precision(cfg.precision, self.device)
        devices.configure(self.device, cfg.threads)
        self.autocast = functools.partial(devices.autocast, self.device, self.precision)
        self.train_meta = read_json(cfg.train_tokens.removesuffix(".bin") + ".json")
        self.stream = open_tokens(cfg.train_tokens)
        self.model_cfg = cfg.model_config(int(self.train_meta["vocab_size"]))
        self.steps = plan_steps(cfg, len(self.stream))
        if cfg.batch_size % self.world.size:
            raise ValueError(f"batch size {cfg.batch_size} does not divide among {self.world.size} data-parallel "
                             f"processes: expected a multiple of {self.world.size}")
        if cfg.noise_scale and self.world.size == 1 and cfg.batch_size < ns.SMALL_FRACTION:
            raise ValueError(f"the noise scale needs a batch of at least {ns.SMALL_FRACTION} windows to split")
        # Fixed evaluation samples, each checked (size, vocabulary) before any training.
        self.sets = {name: eval_set(name, path, cfg.eval_tokens, cfg.context, self.model_cfg.vocab_size, self.device)
                     for name, path in (("validation", cfg.val_tokens), ("test", cfg.test_tokens),
                                        ("transfer", cfg.transfer_tokens)) if path}
        self.val, self.transfer = self.sets["validation"], self.sets.get("transfer")
        if cfg.branch_from and not Path(cfg.branch_from).exists():
            raise FileNotFoundError(f"branch checkpoint {cfg.branch_from} does not exist: run the stable phase first")

    def build_model(self) -> None:
        """Model and optimiser from the seed, the window order, and the state resumed from a checkpoint."""
        cfg, world = self.cfg, self.world
        torch.manual_seed(cfg.seed)
        self.model = GPT(self.model_cfg).to(self.device)
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        self.order = window_order(cfg.tokens // cfg.context, cfg.epochs, cfg.seed,
                                  (len(self.stream) - 1) // cfg.context)
        self.flops_per_token = training_flops(self.model_cfg, 1)["flops_per_token"]
        self.tokens_per_step = cfg.batch_size * cfg.context
        self.progress = (self.checkpointer.resume(self.model, self.optimizer, self.device, cfg.branch_from)
                         if self.checkpointer else Progress())
        # After resuming: DDP starts every rank from rank 0's weights.
        self.trained = ddp.wrap(self.model, world, self.device)
        if cfg.compile:  # evaluation stays eager: it runs rarely, on batches of another shape
            self.trained = torch.compile(self.trained)
        self.share = slice(*world.share(cfg.batch_size))  # this rank's windows of each global batch

    def plan_tracks(self) -> None:
        """The learning curves to record, the schedule the steps follow, and the step to stop at."""
        cfg, progress = self.cfg, self.progress
        self.schedule = cfg.schedule_for(self.steps)
        if cfg.branch_tokens:
            self.tracks = branch_tracks(cfg, progress, len(self.stream))
            self.schedule, self.stop = self.tracks[-1].schedule, self.tracks[-1].schedule.branch_step
            if any(t.schedule.branch_step <= progress.step and not t.branch.path.exists() for t in self.tracks):
                raise FileNotFoundError(f"stable phase checkpoint at step {progress.step} but branch checkpoints in "
                                        f"{cfg.branch_dir} are gone: delete {self.checkpointer.path} to start again")
        else:
            self.tracks = [Track(self.schedule, set(eval_steps(self.steps, cfg.eval_points)), progress.curve,
                                 progress.recent, noise=progress.noise)]
            self.stop = self.steps

    def noise_tracks(self, step: int) -> list[Track]:
        """The tracks whose noise scale this step measures: those with a row at this step, or whose
        last step it is (for the row after it), each with its own moving averages, as if trained alone."""
        if not self.cfg.noise_scale:
            return []
        return [t for t in self.tracks if step <= t.rows_until and (step in t.evals or step == t.schedule.steps - 1)]

    def save_branches(self, step: int) -> None:
        """Stable phase: save each branch whose cooldown starts at this step."""
        progress = self.progress
        for track in self.tracks:
            if track.branch is not None and step == track.schedule.branch_step and self.world.main:
                track.branch.save(self.model, self.optimizer, Progress(
                    step, track.curve, track.recent, progress.train_seconds,
                    progress.wall_seconds + time.perf_counter() - self.started, inherited_steps=step,
                    noise=dict(track.noise), noise_seconds=progress.noise_seconds))

    def record_evals(self, step: int) -> bool:
        """Append a curve row to every track due at this step; says whether any was."""
        # A resumed run starts at a step whose evaluation is already in the curve.
        due = [t for t in self.tracks if step in t.evals and step <= t.rows_until
               and not (t.curve and t.curve[-1]["step"] == step)]
        if not due:
            return False
        model, world, transfer = self.model, self.world, self.transfer
        eval_loss = evaluate(model, self.val.x, self.val.y, self.autocast, world=world)
        transfer_loss = evaluate(model, transfer.x, transfer.y, self.autocast, world=world) if transfer else None
        for track in due:
            track.curve.append({
                "step": step,
                "tokens": step * self.tokens_per_step,
                "flops": step * self.tokens_per_step * self.flops_per_token,
                "train_loss": float(np.mean(track.recent)) if track.recent else float("nan"),
                "eval_loss": eval_loss,
                "lr": track.schedule.lr(min(step, track.schedule.steps - 1)),
                "transfer_loss": transfer_loss,
                # Filled by the step that starts here (measure_noise); the last row's is the last step's.
                "noise_scale": (ns.NoiseScale.from_state(track.noise).value()
                                if self.cfg.noise_scale and step == track.schedule.steps else None),
            })
            track.recent.clear()
        return True

    def checkpoint(self, step: int, at_eval: bool, agreed: int | None) -> None:
        """Save the checkpoint if it is due; after a stop signal, save it and raise ``Stopped``."""
        checkpointer, progress, world = self.checkpointer, self.progress, self.world
        if not checkpointer:
            return
        # One process stops as soon as it sees a signal; ranks stop on the one they agreed on.
        signum = checkpointer.signum if world.size == 1 else agreed
        if not checkpointer.due(step, at_eval=at_eval, stop=signum is not None):
            return
        progress.step = step
        progress.wall_seconds += time.perf_counter() - self.started
        self.started = time.perf_counter()
        if world.main:
            checkpointer.save(self.model, self.optimizer, progress)
        if signum is not None:
            world.barrier()  # the others wait for rank 0's checkpoint before they all exit
            raise Stopped(signum, checkpointer.path, step, self.stop)

    def train_step(self, step: int) -> tuple[float, int | None]:
        """One optimiser step; returns the batch's loss and the stop signal the ranks agreed on.

        A non-finite loss is returned without updating the model.
        """
        cfg, checkpointer = self.cfg, self.checkpointer
        t0 = time.perf_counter()
        set_lr(self.optimizer, self.schedule.lr(step))
        starts = self.order[step * cfg.batch_size : (step + 1) * cfg.batch_size][self.share] * cfg.context
        x, y = (t.to(self.device) for t in get_batch(self.stream, starts, cfg.context))
        measure = self.noise_tracks(step)
        # Data-parallel, a measured step keeps each rank's gradient (a small batch) until measure_noise.
        local = self.trained.no_sync() if measure and self.world.size > 1 else contextlib.nullcontext()
        with local:
            with self.autocast():
                _, loss = self.trained(x, y)
            # The ranks agree on the batch's mean loss and on a stop signal, so they break together.
            loss_value, agreed = self.world.agree(loss.item(), checkpointer.signum if checkpointer else None)
            if not math.isfinite(loss_value):
                return loss_value, agreed
            update(self.model, self.optimizer, loss, cfg.grad_clip,
                   functools.partial(self.measure_noise, step, x, y, measure) if measure else None)
        for track in self.tracks:
            if track.branch is None or step < track.schedule.branch_step:
                track.recent.append(loss_value)
        self.progress.train_seconds += time.perf_counter() - t0
        return loss_value, agreed

    def measure_noise(self, step: int, x: torch.Tensor, y: torch.Tensor, tracks: list[Track]) -> None:
        """After the backward pass of step ``step``: one measurement of the noise scale (module
        ``workflow_scripts.train.noise_scale``), added to each track's and written into its row of this step."""
        t0 = time.perf_counter()
        ns.record(tracks, step, ns.measure(self.model, self.world, x, y, self.autocast))
        self.progress.noise_seconds += time.perf_counter() - t0

    def branch_summary(self, step: int, status: str) -> dict:
        """Stable phase: the step of each branch checkpoint written, and the steps run."""
        if status != "ok":
            raise ValueError(f"the stable phase diverged at step {step}; its cells cannot branch from it "
                             "(set training.branch: false to train them alone)")
        return {"branches": {t.branch.path.name: t.schedule.branch_step for t in self.tracks}, "steps": step}

    def metrics(self, trained_steps: int, status: str) -> dict:
        """The cell's metrics.json record (``workflow_scripts.train.token_cell`` docstring, GUIDE section 3)."""
        cfg, model_cfg, progress, transfer = self.cfg, self.model_cfg, self.progress, self.transfer
        curve = progress.curve
        tokens_trained = trained_steps * self.tokens_per_step
        final = curve[-1] if status == "ok" else None
        test = self.sets.get("test")
        test_loss = evaluate(self.model, test.x, test.y, self.autocast, world=self.world) if final and test else None
        return {
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
            # The floor a model of this context can reach on these windows (the law's E
            # estimates it); the whole-past floor of the split beside it.
            "optimal_loss": self.val.optimal_loss,
            "optimal_loss_full_context": self.val.meta.get("optimal_loss_per_token"),
            "C_budget": cfg.compute_budget or None,
            "steps": trained_steps,
            # A cell branched from a WSD stable phase inherits its first steps; D and C count them all.
            "steps_inherited": progress.inherited_steps,
            "steps_trained": trained_steps - progress.inherited_steps,
            "wall_time_s": progress.wall_seconds + time.perf_counter() - self.started,
            "tokens_per_s": tokens_trained / progress.train_seconds if progress.train_seconds else None,
            "batch_size": cfg.batch_size,  # windows per step: the B of Kaplan's S_min and E_min
            # None where the last |G|² average was not positive (NaN in the curve): metrics.json stays JSON.
            "noise_scale": (final["noise_scale"] if final and cfg.noise_scale
                            and math.isfinite(final["noise_scale"] or math.nan) else None),
            "noise_scale_s": progress.noise_seconds if cfg.noise_scale else None,
            "provenance": self.provenance(),
        }

    def provenance(self) -> dict:
        """What the numbers came from: config, device, processes, resume point and the token files' hashes."""
        return provenance(
            config=asdict(self.cfg),
            device=str(self.device),
            precision=self.precision,
            torch_threads=torch.get_num_threads(),
            data_parallel_processes=self.world.size,
            resumed_from_steps=self.progress.resumed_from,
            train_tokens_sha256=self.train_meta.get("sha256"),
            **{f"{name}_tokens_sha256": s.meta.get("sha256") for name, s in self.sets.items() if name != "validation"},
            val_tokens_sha256=self.val.meta.get("sha256"),
        )


def train(cfg: TrainConfig, checkpointer: Checkpointer | None = None) -> tuple[dict, list[dict]]:
    """Train the cell; returns its metrics record and learning curve.

    Only the checkpoint is written, and only with a ``checkpointer``: then the
    run resumes from it (or starts from ``--branch-from``), saves it as the
    checkpointer decides, and raises ``Stopped`` after saving when a stop
    signal has arrived. With ``--branch-tokens`` it is a stable phase instead:
    it writes the branch checkpoints and returns a summary and no curve.
    """
    run = TokenRun(cfg, checkpointer)
    step, status = run.progress.step, "ok"
    agreed = None  # data-parallel: the stop signal the ranks agreed on at the last step
    while True:
        run.save_branches(step)
        at_eval = run.record_evals(step)
        if step == run.stop:
            break
        run.checkpoint(step, at_eval, agreed)
        loss_value, agreed = run.train_step(step)
        if not math.isfinite(loss_value):
            status = "diverged"  # the study goes on; the fits exclude this cell and say why
            break
        step += 1
    if cfg.branch_tokens:
        return run.branch_summary(step, status), []
    return run.metrics(step, status), run.progress.curve


def curve_csv(curve: list[dict]) -> str:
    # transfer_loss is empty without a transfer set (and in rows of checkpoints from before the column).
    return csv_text(curve, CURVE_COLUMNS)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    return parse_flags(TrainConfig, argv, __doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    if not ddp.under_torchrun():  # under torchrun the launcher (workflow_scripts.train.ddp) claimed them
        gpu_slots.claim_or_exit(cfg.gpus)
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
