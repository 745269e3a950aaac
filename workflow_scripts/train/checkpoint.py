"""Checkpoints of a training cell, so a killed or preempted job resumes where it stopped.

A checkpoint holds everything the next step depends on: model and optimiser
state, the step (which fixes the position in the seeded window order), the
random-number states of torch, numpy and Python, the learning-curve rows so
far and the training losses since the last evaluation. Resuming from it on the
same device reproduces an uninterrupted run bit for bit.

It also holds the cell's training flags; a checkpoint written with other flags
is never resumed (the run starts fresh and says so in one warning line). It is
written atomically, so a kill during a save leaves the previous checkpoint.
The training entry point removes it once metrics.json is written: from then on
metrics.json marks the cell finished, and a checkpoint (model and two AdamW
moments, 3 × N floats) per finished cell would only take disk space and could
be resumed by mistake if the cell is deliberately re-run.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workflow_scripts.io import atomic_path, atomic_write_json, atomic_write_text

FORMAT = 1
# Flags that say where outputs go or how often to save, not what is computed:
# they may change between the killed run and its retry.
# The test split is measured once, after the last step: a WSD stable phase (which never gets there)
# need not be given it for its branches to be resumed by the cells that are.
NOT_IDENTITY = ("metrics", "curve", "checkpoint", "checkpoint_every_steps", "checkpoint_every_s", "branch_from",
                "test_tokens", "experiment", "model_name", "data_name", "compute_budget",
                "transfer_name", "setting")  # the last six are labels only (a setting's values are in it)
# SLURM sends SIGTERM at the time limit (then SIGKILL after KillWait) and, with
# --signal, SIGUSR1 ahead of it; both are handled at the next step boundary.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def cell_identity(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags that decide what a cell computes (``flags``: its config as a dict)."""
    return {k: v for k, v in flags.items() if k not in NOT_IDENTITY}


def default_path(metrics: str | Path) -> Path:
    """``.../metrics.json`` → ``.../metrics.checkpoint.pt``, beside the cell's outputs."""
    metrics = Path(metrics)
    return metrics.with_name(metrics.stem + ".checkpoint.pt")


@dataclass
class Progress:
    """The training loop's state besides model and optimiser."""

    step: int = 0  # the next optimiser step; windows order[step × batch_size:] are still to come
    curve: list[dict] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)  # training losses since the last evaluation
    train_seconds: float = 0.0
    wall_seconds: float = 0.0  # wall time of earlier attempts
    resumed_from: list[int] = field(default_factory=list)  # steps at which earlier attempts stopped
    inherited_steps: int = 0  # steps trained by a WSD stable phase this cell branched from
    branches: dict = field(default_factory=dict)  # a stable phase's branch curves: {tokens: {curve, recent}}
    noise: dict = field(default_factory=dict)  # the noise scale's moving averages (workflow_scripts.train.noise_scale)
    noise_seconds: float = 0.0  # of train_seconds, spent measuring the noise scale


class Stopped(Exception):
    """A stop signal arrived; the checkpoint is written and the job should exit non-zero."""

    def __init__(self, signum: int, path: Path, step: int, steps: int) -> None:
        self.signum, self.path, self.step, self.steps = signum, path, step, steps
        super().__init__(
            f"received {signal.Signals(signum).name}: checkpoint written to {path} at step {step}/{steps}; "
            f"exiting with status {self.exit_code} so the job is retried and resumes"
        )

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention for "ended by this signal"


class Checkpointer:
    """Decides when to save (every ``every_steps`` steps, every ``every_s`` seconds, at
    evaluation points, on a stop signal) and saves and resumes one cell's checkpoint."""

    def __init__(self, path: str | Path, identity: dict[str, Any], every_steps: int = 0, every_s: float = 60.0):
        self.path = Path(path)
        self.identity = cell_identity(identity)
        self.every_steps, self.every_s = every_steps, every_s
        self.last_save = time.monotonic()
        self.signum: int | None = None

    def install_signal_handlers(self) -> None:
        def request_stop(signum, frame):  # only sets a flag: saving inside a handler could tear a step
            self.signum = signum

        self._previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}

    def restore_signal_handlers(self) -> None:
        """The handlers from before training. A stop signal that came after the last step is passed
        on to a Python handler among them: a pack's (workflow_scripts.train.pack), which then starts
        no further cell; a process's default handler would end a finished cell before its outputs."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        if self.signum is not None and callable(self._previous[self.signum]):
            self._previous[self.signum](self.signum, None)

    def due(self, step: int, at_eval: bool, stop: bool | None = None) -> bool:
        """``stop``: whether to stop now; by default whether a stop signal arrived (data-parallel
        ranks pass the signal they agreed on instead, so that they all stop at the same step)."""
        if step == 0:
            return False  # nothing to save before the first step
        return (
            at_eval
            or (self.signum is not None if stop is None else stop)
            or (self.every_steps > 0 and step % self.every_steps == 0)
            or (self.every_s > 0 and time.monotonic() - self.last_save >= self.every_s)
        )

    def save(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, progress: Progress) -> None:
        state = {
            "format": FORMAT,
            "identity": self.identity,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "progress": vars(progress),
            "rng": _rng_state(),
        }
        with atomic_path(self.path, suffix=".pt") as tmp:
            torch.save(state, tmp)
        self.last_save = time.monotonic()

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
               branch: str | Path = "") -> Progress:
        """Load the checkpoint into ``model`` and ``optimizer`` if it belongs to this cell; else, when
        the cell has none yet, the ``branch`` checkpoint a WSD stable phase wrote for it; else start fresh."""
        path = self.path if self.path.exists() or not branch else Path(branch)
        if not path.exists():
            return Progress()
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as error:  # a checkpoint of another torch version or a damaged disk: do not crash the cell
            return _fresh(f"cannot read checkpoint {path} ({type(error).__name__}: {error})")
        if state.get("format") != FORMAT:
            return _fresh(f"checkpoint {path} has format {state.get('format')}, expected {FORMAT}")
        changed = sorted(k for k in self.identity.keys() | state["identity"].keys()
                         if self.identity.get(k) != state["identity"].get(k))
        if changed:
            what = ", ".join(f"{k}: {state['identity'].get(k)!r} → {self.identity.get(k)!r}" for k in changed)
            return _fresh(f"checkpoint {path} was written with other flags ({what})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
        progress = Progress(**state["progress"])
        if path != self.path:
            print(f"starting from branch checkpoint {path} at step {progress.step}", file=sys.stderr)
            return progress
        print(f"resuming from checkpoint {path} at step {progress.step}", file=sys.stderr)
        progress.resumed_from.append(progress.step)
        return progress

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _fresh(reason: str) -> Progress:
    print(f"warning: {reason}; starting fresh", file=sys.stderr)
    return Progress()


def _rng_state() -> dict:
    # numpy's key array becomes a tensor so the file loads with weights_only=True (no arbitrary pickles).
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def run_cell(train_fn, cfg, path: str | Path, cleanup=None) -> tuple[Checkpointer, dict, list[dict]]:
    """Run ``train_fn(cfg, checkpointer)`` as a command line's job: checkpoints at ``path``, signals
    handled; a bad input or a stop signal ends the process with one line and a non-zero code.

    ``cleanup`` runs however training ends (e.g. leaving a data-parallel process group).
    """
    checkpointer = Checkpointer(path, asdict(cfg), cfg.checkpoint_every_steps, cfg.checkpoint_every_s)
    checkpointer.install_signal_handlers()
    try:
        metrics, curve = train_fn(cfg, checkpointer)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    except Stopped as stop:
        print(stop, file=sys.stderr)
        sys.exit(stop.exit_code)
    finally:
        checkpointer.restore_signal_handlers()
        if cleanup is not None:
            cleanup()
    return checkpointer, metrics, curve


def write_cell(cfg, checkpointer: Checkpointer, metrics: dict, curve_text: str) -> None:
    """The cell's outputs, atomically: the curve first, metrics.json last (its presence marks a
    finished cell); then the checkpoint goes."""
    atomic_write_text(cfg.curve, curve_text)
    atomic_write_json(cfg.metrics, metrics)
    checkpointer.remove()
    print(f"{cfg.experiment} {cfg.model_name} {cfg.data_name} seed={cfg.seed}: "
          f"status={metrics['status']} val_loss={metrics['val_loss']} in {metrics['wall_time_s']:.1f}s")
