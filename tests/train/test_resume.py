"""Checkpoints and resumption: a killed or preempted cell, run again, ends with the numbers of an uninterrupted run.

The jobs run as real ``python -m workflow_scripts.train.token_cell`` processes and are
killed with real signals. Dropout is on so that the restored torch RNG state
matters, and the cell makes several epochs so the data-order position matters.
"""

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from tests.helpers import small_cell
from workflow_scripts.train.checkpoint import Checkpointer, default_path
from workflow_scripts.train.token_cell import train

STEPS = 28672 // 32 * 3 // 8  # tokens // context × epochs // batch_size
# Everything the numbers depend on; the outputs and the checkpoint cadence are added per run.
CELL = ["--n-layer", "2", "--d-model", "16", "--n-head", "2", "--context", "32", "--batch-size", "8",
        "--tokens", "28672", "--epochs", "3", "--dropout", "0.1", "--eval-tokens", "1024", "--eval-points", "6",
        "--threads", "1", "--device", "cpu"]
# What must be bitwise equal; wall times and throughput obviously differ.
NUMBERS = ("val_loss", "val_loss_best", "train_loss", "steps", "D", "C")


def command(token_files, out, *extra):
    return [sys.executable, "-m", "workflow_scripts.train.token_cell", *CELL,
            "--train-tokens", str(token_files / "train.bin"), "--val-tokens", str(token_files / "val.bin"),
            "--metrics", str(out / "metrics.json"), "--curve", str(out / "curve.csv"), *extra]


def finish(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def wait_for(path, proc, min_step=1, timeout=60.0):
    """Until ``proc`` has checkpointed at ``min_step`` or later (a checkpoint is replaced atomically, never torn)."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and checkpoint_step(path) >= min_step):
        assert proc.poll() is None, f"the job ended before writing {path}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no checkpoint after {timeout} s"
        time.sleep(0.02)


def checkpoint_step(path):
    return torch.load(path, weights_only=True)["progress"]["step"]


def numbers(out):
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: metrics[k] for k in NUMBERS}, (out / "curve.csv").read_text()


@pytest.fixture(scope="module")
def uninterrupted(token_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    finish(command(token_files, out))
    assert not default_path(out / "metrics.json").exists()  # a finished cell removes its checkpoint
    return numbers(out)


def test_killed_job_resumes_to_identical_numbers(token_files, uninterrupted, tmp_path):
    cmd = command(token_files, tmp_path, "--checkpoint-every-steps", "1")
    ckpt = default_path(tmp_path / "metrics.json")
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(ckpt, job, min_step=5)  # a checkpoint exists and a few more steps have passed
    job.kill()  # SIGKILL: no handler runs, the last atomic checkpoint is all that survives
    job.communicate()
    assert not (tmp_path / "metrics.json").exists(), "the job finished before it was killed"
    killed_at = checkpoint_step(ckpt)
    assert 0 < killed_at < STEPS

    resumed = finish(cmd)
    assert f"resuming from checkpoint {ckpt} at step {killed_at}" in resumed.stderr
    assert numbers(tmp_path) == uninterrupted
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["provenance"]["resumed_from_steps"] == [killed_at]
    assert not ckpt.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1], ids=["SIGTERM", "SIGUSR1"])
def test_stop_signal_checkpoints_exits_nonzero_and_resumes(token_files, uninterrupted, tmp_path, signum):
    # The default cadence: the first checkpoint comes at the first evaluation point (step 1),
    # which also proves the signal handlers are installed.
    cmd = command(token_files, tmp_path)
    ckpt = default_path(tmp_path / "metrics.json")
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(ckpt, job)
    job.send_signal(signum)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signum
    name = signal.Signals(signum).name
    assert stderr.strip().splitlines()[-1].startswith(f"received {name}: checkpoint written to {ckpt} at step ")
    assert not (tmp_path / "metrics.json").exists()
    stopped_at = checkpoint_step(ckpt)
    assert 0 < stopped_at < STEPS

    finish(cmd)
    assert numbers(tmp_path) == uninterrupted


def test_checkpoint_of_other_flags_is_not_resumed(token_files, tmp_path, capsys):
    path = tmp_path / "cell.checkpoint.pt"
    cell = small_cell(token_files, dropout=0.1)
    other = small_cell(token_files, dropout=0.1, lr=0.01)

    def run(cfg):
        return train(cfg, Checkpointer(path, vars(cfg), every_steps=1))

    reference, reference_curve = train(cell)
    run(cell)  # leaves its last checkpoint (step 31 of 32): only the entry point removes it
    capsys.readouterr()
    mismatched, _ = run(other)
    assert capsys.readouterr().err.strip() == (
        f"warning: checkpoint {path} was written with other flags (lr: 0.003 → 0.01); starting fresh"
    )
    assert mismatched["val_loss"] == train(other)[0]["val_loss"]

    run(cell)  # overwrites the mismatched checkpoint with one of this cell
    resumed, resumed_curve = run(cell)
    assert resumed["provenance"]["resumed_from_steps"] == [31]
    assert resumed["val_loss"] == reference["val_loss"]
    assert pd.DataFrame(resumed_curve).equals(pd.DataFrame(reference_curve))  # NaN-aware, exact
