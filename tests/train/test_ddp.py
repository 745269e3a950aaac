"""Data-parallel cells: two gloo processes on CPU under torchrun end with one process's numbers."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from workflow_scripts.plan.flags import launcher
from workflow_scripts.train import ddp
from workflow_scripts.train.checkpoint import default_path

CELL = ["--n-layer", "1", "--d-model", "16", "--n-head", "2", "--context", "32", "--batch-size", "8",
        "--tokens", "8192", "--eval-tokens", "1024", "--eval-points", "4", "--threads", "1", "--device", "cpu"]


def command(launcher, token_files, out, *extra):
    flags = [*CELL, "--train-tokens", str(token_files / "train.bin"), "--val-tokens", str(token_files / "val.bin"),
             "--metrics", str(out / "metrics.json"), "--curve", str(out / "curve.csv"), *extra]
    return [sys.executable, "-m", *launcher.split()[2:], *flags]


ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run(launcher, token_files, out, *extra):
    return subprocess.run(command(launcher, token_files, out, *extra), capture_output=True, text=True,
                          timeout=120, env=ENV)


def test_launcher_starts_torchrun_only_for_several_gpus():
    assert launcher(0) == launcher(1) == "python -m workflow_scripts.train.token_cell"
    assert launcher(4) == "python -m workflow_scripts.train.ddp --nproc-per-node 4"
    # A samples cell trains in one process whatever its GPUs.
    assert launcher(0, on_samples=True) == launcher(2, on_samples=True) == "python -m workflow_scripts.train.samples_cell"
    assert ddp.torchrun_command(4, ["--tokens", "8"])[1:] == [
        "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m", "workflow_scripts.train.token_cell",
        "--tokens", "8"]


def test_ranks_share_every_batch_contiguously():
    shares = [ddp.World(rank, 3).share(8) for rank in range(3)]
    assert shares == [(0, 2), (2, 5), (5, 8)]
    assert ddp.World().share(8) == (0, 8) and ddp.World().main and not ddp.World(1, 2).main


def test_two_gloo_processes_match_one_process(token_files, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = run(launcher(1), token_files, one)
    assert single.returncode == 0, single.stderr
    parallel = run(launcher(2), token_files, two)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    a, b = (json.loads((out / "metrics.json").read_text()) for out in (one, two))
    assert b["provenance"]["data_parallel_processes"] == 2 and a["provenance"]["data_parallel_processes"] == 1
    # The same global batches, data order and steps: the same numbers up to float summation order.
    assert (a["steps"], a["D"], a["C"]) == (b["steps"], b["D"], b["C"])
    for key in ("val_loss", "val_loss_best", "train_loss"):
        assert b[key] == pytest.approx(a[key], rel=1e-4), key
    ca, cb = (pd.read_csv(out / "curve.csv") for out in (one, two))
    assert list(ca["step"]) == list(cb["step"])
    pd.testing.assert_frame_equal(ca, cb, rtol=1e-4)
    assert not any(p.name.endswith(".pt") for p in two.iterdir())  # rank 0 removed its checkpoint


def test_batch_that_does_not_divide_among_the_processes_is_one_clear_error(token_files, tmp_path):
    bad = run(launcher(2), token_files, tmp_path, "--batch-size", "7")
    assert bad.returncode != 0
    assert "error: batch size 7 does not divide among 2 data-parallel processes: expected a multiple of 2" in bad.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_stop_signal_to_the_launcher_checkpoints_and_the_rerun_resumes(token_files, tmp_path):
    """SIGTERM (or SLURM's SIGUSR1) to ``python -m workflow_scripts.train.ddp``: torchrun passes SIGTERM to both
    ranks, which agree to stop at the same step; rank 0 checkpoints; run again, the cell resumes from it."""
    longer = ("--epochs", "4")  # 128 steps
    reference = tmp_path / "reference"
    assert run(launcher(2), token_files, reference, *longer).returncode == 0
    cmd = command(launcher(2), token_files, tmp_path, *longer, "--checkpoint-every-steps", "1")
    ckpt = default_path(tmp_path / "metrics.json")
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 60
    while not (ckpt.exists() and torch.load(ckpt, weights_only=True)["progress"]["step"] >= 2):
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.02)
    job.send_signal(signal.SIGUSR1)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode != 0 and not (tmp_path / "metrics.json").exists(), stderr[-2000:]
    assert "received SIGTERM: checkpoint written to" in stderr
    stopped_at = torch.load(ckpt, weights_only=True)["progress"]["step"]
    assert 2 <= stopped_at < 128

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from checkpoint {ckpt} at step {stopped_at}" in resumed.stderr
    a, b = (json.loads((out / "metrics.json").read_text()) for out in (reference, tmp_path))
    assert b["provenance"]["resumed_from_steps"] == [stopped_at]
    # No dropout: nothing random is drawn while training, so the resumed run is the uninterrupted one.
    assert {k: b[k] for k in ("val_loss", "train_loss", "steps")} == {k: a[k] for k in ("val_loss", "train_loss", "steps")}
    assert not ckpt.exists()
