"""Training samples cells (mlp, cnn) on tiny sample folders written here in the contract's format."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from workflow_scripts.train.checkpoint import Checkpointer, Stopped, default_path
from workflow_scripts.models.families import Net, NetConfig, forward_flops_per_sample
from workflow_scripts.train.schedule import make_schedule
from workflow_scripts.train.cell_config import SamplesConfig
from workflow_scripts.train.samples_cell import (
    CURVE_COLUMNS, epoch_order, evaluate, main, train, train_subset,
)

METRIC_KEYS = {
    "schema_version", "experiment", "model", "data", "seed", "status", "model_config", "N", "N_nonembedding", "D",
    "D_unique", "epochs", "C", "C_6ND", "flops_per_sample", "val_loss", "val_loss_best", "test_loss", "train_loss",
    "val_accuracy", "test_accuracy", "optimal_loss", "steps", "wall_time_s", "samples_per_s", "provenance",
}
# What may differ between identical runs: wall times, and provenance (git state, resumed steps).
NOT_NUMBERS = ("wall_time_s", "samples_per_s", "provenance")


def write_samples(folder: Path, splits: dict, task: str, n_classes=None, x_scale=1.0, optimal_loss=None) -> Path:
    """A samples folder as workflow_scripts.data.samples writes it: {split}.x.npy, .y.npy and .json meta."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (x, y) in splits.items():
        np.save(folder / f"{split}.x.npy", x)
        np.save(folder / f"{split}.y.npy", y)
        meta = {"kind": "samples", "task": task, "split": split, "n": len(x), "x_shape": list(x.shape[1:]),
                "x_dtype": str(x.dtype), "y_dtype": str(y.dtype), "x_scale": x_scale, "n_classes": n_classes,
                "optimal_loss": optimal_loss, "sha256": {"x": f"x-{split}", "y": f"y-{split}"},
                "source": {"generator": "test"}}
        (folder / f"{split}.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def sine(tmp_path_factory):
    """y = sin(x) on [-π, π], noiseless: float32 x of shape (n, 1), y (n, 1)."""
    rng = np.random.default_rng(0)

    def split(n):
        x = rng.uniform(-np.pi, np.pi, (n, 1)).astype(np.float32)
        return x, np.sin(x).astype(np.float32)

    return write_samples(tmp_path_factory.mktemp("sine"), {"train": split(1024), "val": split(256),
                                                           "test": split(256)}, "regression", optimal_loss=0.0)


@pytest.fixture(scope="module")
def bands(tmp_path_factory):
    """8 × 8 uint8 images of 3 classes: the class says which block of rows is bright (separable)."""
    rng = np.random.default_rng(1)

    def split(n):
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 80, (n, 8, 8))
        for c in range(3):
            x[y == c, 2 * c : 2 * c + 2, :] += 150
        return x.astype(np.uint8), y.astype(np.int64)

    return write_samples(tmp_path_factory.mktemp("bands"), {"train": split(600), "val": split(200),
                                                            "test": split(200)}, "classification", 3, 1 / 255)


def cell(folder, **overrides):
    settings = dict(data=str(folder), family="mlp", n_layer=1, width=16, activation="tanh", samples=512, epochs=40,
                    batch_size=0, lr=0.01, eval_points=5, seed=0, threads=1, device="cpu")
    return SamplesConfig(**(settings | overrides))


def numbers(metrics):
    return {k: v for k, v in metrics.items() if k not in NOT_NUMBERS}


def test_sine_regression_cell_learns_and_follows_the_contract(sine):
    metrics, curve = train(cell(sine, width=32, epochs=300))
    assert set(metrics) == METRIC_KEYS and metrics["status"] == "ok"
    assert metrics["val_loss"] < 0.01 * np.var(np.load(sine / "val.y.npy"))  # well below predicting the mean
    assert metrics["test_loss"] < 0.01 and metrics["val_loss_best"] <= metrics["val_loss"]
    assert metrics["val_accuracy"] is None and metrics["test_accuracy"] is None and metrics["optimal_loss"] == 0.0
    n = (32 + 32) + (32 + 1)  # 1 → 32 → 1, weights and biases
    forward = forward_flops_per_sample(NetConfig("mlp", [1], 1, 1, 32, "tanh"))
    assert (metrics["N"], metrics["N_nonembedding"]) == (n, n)
    assert (metrics["D"], metrics["D_unique"], metrics["steps"]) == (512 * 300, 512, 300)  # full batch
    assert metrics["C"] == 3 * forward * 512 * 300 and metrics["C_6ND"] == 6 * n * 512 * 300
    assert metrics["flops_per_sample"] == 3 * forward
    assert metrics["provenance"]["data_sha256"]["val"] == {"x": "x-val", "y": "y-val"}
    assert [row["step"] for row in curve] == [0, 1, 4, 17, 72, 300]  # schedule.eval_steps(300, 5)
    assert all(row["samples"] == 512 * row["step"] for row in curve)
    assert curve[-1]["eval_loss"] == metrics["val_loss"]


def test_classification_cell_reaches_high_accuracy(bands):
    metrics, curve = train(cell(bands, family="cnn", n_layer=2, width=4, activation="relu", dropout=0.1,
                                samples=512, epochs=3, batch_size=32, lr=3e-3))
    assert metrics["status"] == "ok" and metrics["model_config"]["in_shape"] == [8, 8]
    assert metrics["val_accuracy"] >= 0.95 and metrics["test_accuracy"] >= 0.95
    assert metrics["val_loss"] < math.log(3) / 2 and curve[0]["eval_accuracy"] < 0.6  # it learned, from chance


def test_same_cell_twice_gives_identical_numbers_and_another_seed_does_not(bands):
    cfg = cell(bands, width=8, dropout=0.2, samples=100, epochs=3, batch_size=16, activation="relu")
    first, curve1 = train(cfg)
    second, curve2 = train(cfg)
    assert numbers(first) == numbers(second)
    assert pd.DataFrame(curve1).equals(pd.DataFrame(curve2))
    other, _ = train(cell(bands, width=8, dropout=0.2, samples=100, epochs=3, batch_size=16, seed=1))
    assert other["val_loss"] != first["val_loss"]


def test_data_order_is_nested_in_d_and_a_function_of_seed_and_epoch(sine):
    assert list(train_subset(1000, 10, seed=3)) == list(train_subset(1000, 400, seed=3)[:10])
    assert sorted(epoch_order(50, 3, 7)) == list(range(50))
    assert list(epoch_order(50, 3, 7)) == list(epoch_order(50, 3, 7)) != list(epoch_order(50, 3, 8))
    # 10 samples in batches of 4: 3 steps an epoch, the last of 2 samples; each sample seen once per epoch.
    cfg = cell(sine, samples=10, batch_size=4, epochs=5)
    assert cfg.steps_per_epoch() == 3 and [cfg.samples_seen(s) for s in (1, 2, 3, 4)] == [4, 8, 10, 14]
    metrics, _ = train(cfg)
    assert (metrics["steps"], metrics["D"]) == (15, 50)


def test_constant_schedule_warms_up_then_holds():
    s = make_schedule("constant", 100, peak=0.5, min_ratio=0.1, warmup_steps=4)
    assert [s.lr(t) for t in range(6)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert s.lr(99) == 0.5 and s.branch_step == 100
    assert make_schedule("constant", 100, peak=0.5, min_ratio=0.1, warmup_frac=0.0).lr(0) == 0.5  # no warmup


def test_evaluation_in_batches_gives_the_same_numbers():
    torch.manual_seed(0)
    model = Net(NetConfig("cnn", [8, 8], 3, n_layer=2, width=4, x_scale=1 / 255))
    x, y = torch.randint(0, 256, (10, 8, 8), dtype=torch.uint8), torch.randint(0, 3, (10,))
    whole, accuracy = evaluate(model, x, y)
    assert evaluate(model, x, y, batch_size=3) == (pytest.approx(whole, rel=1e-6), accuracy)


class StopAt(Checkpointer):
    """A checkpointer whose stop request arrives at step ``at``, as its signal handler would set it."""

    def __init__(self, path, identity, at):
        super().__init__(path, identity, every_s=0)
        self.at = at

    def due(self, step, at_eval):
        if step == self.at:
            self.signum = signal.SIGTERM
        return super().due(step, at_eval)


def test_stopped_midway_then_resumed_ends_bitwise_equal(bands, tmp_path):
    # Dropout, minibatches with a short last batch and several epochs: RNG and data position both matter.
    cfg = cell(bands, width=8, dropout=0.2, samples=200, epochs=4, batch_size=16, activation="relu")
    reference, reference_curve = train(cfg)
    path = tmp_path / "cell.checkpoint.pt"
    with pytest.raises(Stopped) as stop:
        train(cfg, StopAt(path, vars(cfg), at=20))  # step 20 of 52: inside the second epoch
    assert (stop.value.step, stop.value.steps) == (20, 52)
    resumed, resumed_curve = train(cfg, Checkpointer(path, vars(cfg), every_s=0))
    assert resumed["provenance"]["resumed_from_steps"] == [20]
    assert numbers(resumed) == numbers(reference)
    assert pd.DataFrame(resumed_curve).equals(pd.DataFrame(reference_curve))


def test_sigterm_checkpoints_exits_nonzero_and_the_rerun_resumes(sine, tmp_path):
    cfg = cell(sine, width=16, samples=1000, batch_size=8, epochs=25, eval_points=4)  # 3,125 steps
    flags = ["--data", str(sine), "--family", "mlp", "--n-layer", "1", "--width", "16", "--activation", "tanh",
             "--samples", "1000", "--epochs", "25", "--batch-size", "8", "--lr", "0.01", "--eval-points", "4",
             "--threads", "1", "--device", "cpu", "--metrics", str(tmp_path / "metrics.json"),
             "--curve", str(tmp_path / "curve.csv")]
    cmd = [sys.executable, "-m", "workflow_scripts.train.samples_cell", *flags]
    ckpt = default_path(tmp_path / "metrics.json")
    job = subprocess.Popen([*cmd, "--checkpoint-every-steps", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    deadline = time.monotonic() + 60
    while not ckpt.exists():
        assert job.poll() is None, job.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=60)
    assert job.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"received SIGTERM: checkpoint written to {ckpt} at step ")
    assert not (tmp_path / "metrics.json").exists()

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resuming from checkpoint {ckpt} at step " in done.stderr
    assert not ckpt.exists()  # a finished cell removes its checkpoint
    written = json.loads((tmp_path / "metrics.json").read_text())
    reference, reference_curve = train(cfg)
    for key in ("val_loss", "val_loss_best", "test_loss", "train_loss", "steps", "D", "C"):
        assert written[key] == reference[key], key
    curve = pd.read_csv(tmp_path / "curve.csv")
    assert list(curve.columns) == CURVE_COLUMNS and curve["eval_accuracy"].isna().all()
    assert curve["eval_loss"].tolist() == [row["eval_loss"] for row in reference_curve]


def test_divergence_writes_metrics_with_status_diverged_and_exits_zero(sine, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.train.samples_cell", "--data", str(sine), "--n-layer", "2",
         "--width", "64", "--samples", "256", "--epochs", "50", "--batch-size", "0", "--lr", "1e12",
         "--device", "cpu", "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["status"] == "diverged" and metrics["val_loss"] is None and metrics["test_loss"] is None
    assert 0 < metrics["steps"] < 50 and metrics["D"] == 256 * metrics["steps"]
    assert (tmp_path / "c.csv").exists() and not default_path(tmp_path / "m.json").exists()


def test_targets_that_do_not_fit_the_task_fail_in_one_line(bands, tmp_path):
    x, y = np.load(bands / "train.x.npy"), np.load(bands / "train.y.npy")
    splits = {split: (x, y) for split in ("train", "val", "test")}
    folder = write_samples(tmp_path / "too_few_classes", splits, "classification", n_classes=2, x_scale=1 / 255)
    with pytest.raises(ValueError, match=r"^train.y.npy: class ids span \[0, 2\], expected \[0, 2\) \(meta n_classes\)$"):
        train(cell(folder))
    flat = {split: (x, y.astype(np.float32)) for split in ("train", "val", "test")}
    with pytest.raises(ValueError, match=r"^train.y.npy: float32 of shape \(600,\), expected float32 targets"):
        train(cell(write_samples(tmp_path / "flat", flat, "regression")))


@pytest.mark.parametrize("flags, message", [
    (["--samples", "1500"], "--samples 1500 exceeds the training split (1024 samples) by 476: "
                              "lower the data size or enlarge the split"),
    (["--family", "rnn"], "family 'rnn': expected one of ['mlp', 'cnn']"),
    (["--activation", "swish"], "activation 'swish': expected one of ['tanh', 'relu', 'gelu']"),
    (["--batch-size", "-1"], "--batch-size -1: expected a positive integer, or 0 for full batch"),
    (["--schedule", "step"], "schedule 'step': expected one of ['cosine', 'wsd', 'constant']"),
    (["--data", "/nonexistent"], "samples folder /nonexistent lacks train.x.npy: prepare the dataset first"),
])
def test_bad_flags_fail_in_one_line_before_training(sine, tmp_path, flags, message):
    with pytest.raises(SystemExit) as error:
        main(["--data", str(sine), "--device", "cpu", "--metrics", str(tmp_path / "m.json"), *flags])
    assert error.value.code == f"error: {message}"
    assert not (tmp_path / "m.json").exists()
