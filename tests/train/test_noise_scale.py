"""The gradient noise scale (workflow_scripts.train.noise_scale) on a problem where it is known, and in a cell."""

import contextlib

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import small_cell
from workflow_scripts.train import noise_scale as ns
from workflow_scripts.train.token_cell import train


class Quadratic(torch.nn.Module):
    """Per-example loss ½|w − x_i|², x_i ~ N(μ, σ² I_d): the gradient of example i is w − x_i, so
    G = w − μ and Σ = σ² I, i.e. |G|² = |w − μ|², tr Σ = d σ², B_simple = d σ² / |w − μ|²."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float64))

    def forward(self, x, y=None):
        return None, 0.5 * ((self.w - x) ** 2).sum(-1).mean()


D, SIGMA, B = 20, 0.5, 16
MU = torch.zeros(D, dtype=torch.float64)
W = torch.full((D,), 0.3, dtype=torch.float64)
G2, TRACE = float(((W - MU) ** 2).sum()), D * SIGMA ** 2  # 1.8 and 5.0: B_simple = 2.78


def measure(model, generator):
    """One measurement as a token cell takes it: G_big from .grad, G_small from the first half."""
    x = MU + SIGMA * torch.randn(B, D, dtype=torch.float64, generator=generator)
    model.zero_grad()
    model(x)[1].backward()
    big = ns.squared_norm([p.grad for p in model.parameters()])
    before = model.w.grad.clone()
    small = ns.sub_batch_squared_norm(model, x[: B // 2], None, contextlib.nullcontext)
    assert torch.equal(model.w.grad, before)  # the update's gradient is left alone
    return small, big


def test_estimators_are_unbiased_on_a_quadratic_with_known_noise_scale():
    model, generator = Quadratic(W), torch.Generator().manual_seed(0)
    estimates = np.array([ns.gradient_estimates(B // 2, B, *measure(model, generator)) for _ in range(4000)])
    g2, trace = estimates.mean(axis=0)
    assert g2 == pytest.approx(G2, rel=0.03) and trace == pytest.approx(TRACE, rel=0.03)


def test_moving_average_recovers_the_noise_scale():
    model, generator = Quadratic(W), torch.Generator().manual_seed(1)
    noise = ns.NoiseScale()
    assert noise.value() is None
    for step in range(2000):
        noise.add(step, B // 2, B, *measure(model, generator))
    assert noise.value() == pytest.approx(TRACE / G2, rel=0.15)
    assert ns.NoiseScale.from_state(noise.state()) == noise


def test_closed_form_estimators_and_decay_per_step():
    # |G_b|² = |G|² + trΣ/b exactly: the estimators invert it.
    g2, trace = ns.gradient_estimates(4, 16, G2 + TRACE / 4, G2 + TRACE / 16)
    assert g2 == pytest.approx(G2) and trace == pytest.approx(TRACE)
    with pytest.raises(ValueError, match="b_small < b_big"):
        ns.gradient_estimates(16, 16, 1.0, 1.0)
    noise = ns.NoiseScale()
    noise.add(0, 4, 16, G2 + TRACE / 4, G2 + TRACE / 16)
    assert noise.value() == pytest.approx(TRACE / G2)  # bias-corrected: one measurement is its own mean
    noise.add(1000, 4, 16, 2 + 1 / 4, 2 + 1 / 16)  # far later: the old one has decayed away
    assert noise.value() == pytest.approx(0.5, rel=1e-6)
    noise.add(1001, 4, 16, 1.0, 0.1)  # this |G|² estimate is negative, their average not yet
    assert noise.value() > 0
    assert np.isnan(ns.NoiseScale(g2=-1.0, trace=1.0, weight=1.0, step=0).value())


def test_cell_records_the_noise_scale_without_changing_its_numbers(token_files):
    plain, plain_curve = train(small_cell(token_files))
    metrics, curve = train(small_cell(token_files, noise_scale=True))
    columns = ["step", "train_loss", "eval_loss", "lr"]
    assert pd.DataFrame(curve)[columns].equals(pd.DataFrame(plain_curve)[columns])  # bitwise
    values = [row["noise_scale"] for row in curve]
    assert all(v is not None and np.isfinite(v) for v in values[1:]), values
    assert metrics["noise_scale"] == values[-1] and metrics["batch_size"] == 8
    assert 0 < metrics["noise_scale_s"] < metrics["wall_time_s"]
    assert plain["noise_scale"] is None and all(row["noise_scale"] is None for row in plain_curve)


def test_resumed_cell_records_the_noise_scale_of_an_uninterrupted_one(token_files, tmp_path):
    import signal

    from workflow_scripts.train.checkpoint import Checkpointer, Stopped
    from dataclasses import asdict

    cfg = small_cell(token_files, noise_scale=True, dropout=0.1)
    _, whole = train(cfg)
    stopping = Checkpointer(tmp_path / "c.pt", asdict(cfg))
    stopping.signum = signal.SIGTERM  # stops at step 1, an evaluation point, before its measurement
    with pytest.raises(Stopped):
        train(cfg, stopping)
    _, resumed = train(cfg, Checkpointer(tmp_path / "c.pt", asdict(cfg)))
    assert pd.DataFrame(resumed).equals(pd.DataFrame(whole))


def test_two_gloo_processes_measure_the_noise_scale_from_their_own_gradients(token_files, tmp_path):
    from tests.train.test_ddp import run
    from workflow_scripts.plan.flags import launcher

    one, two = tmp_path / "one", tmp_path / "two"
    for processes, out in ((1, one), (2, two)):
        done = run(launcher(processes), token_files, out, "--noise-scale", "true")
        assert done.returncode == 0, done.stderr[-3000:]
    a, b = (pd.read_csv(out / "curve.csv") for out in (one, two))
    pd.testing.assert_frame_equal(a.drop(columns="noise_scale"), b.drop(columns="noise_scale"), rtol=1e-4)
    # One process: its first half against the batch; two: each rank's half, averaged. Same quantity, other draws.
    assert b["noise_scale"][1:].notna().all() and np.isfinite(b["noise_scale"][1:]).all()
    ratio = np.median(b["noise_scale"][1:] / a["noise_scale"][1:])
    assert 0.1 < ratio < 10, (a["noise_scale"], b["noise_scale"])


def test_batch_too_small_to_split_fails_before_training(token_files):
    with pytest.raises(ValueError, match="needs a batch of at least 2 windows"):
        train(small_cell(token_files, noise_scale=True, batch_size=1))


def test_cells_branched_from_a_stable_phase_record_the_noise_scale_of_cells_trained_alone(token_files, tmp_path):
    from dataclasses import asdict

    from tests.train.test_branching import SIZES, wsd_cell
    from workflow_scripts.train.checkpoint import Checkpointer

    stable = wsd_cell(token_files, tokens=max(SIZES), branch_tokens=",".join(map(str, SIZES)),
                      branch_dir=str(tmp_path), noise_scale=True)
    train(stable, Checkpointer(tmp_path / "stable.pt", asdict(stable)))
    for tokens in SIZES:
        _, alone = train(wsd_cell(token_files, tokens=tokens, noise_scale=True))
        cell = wsd_cell(token_files, tokens=tokens, branch_from=str(tmp_path / f"{tokens}.pt"), noise_scale=True)
        _, branched = train(cell, Checkpointer(tmp_path / f"cell{tokens}.pt", asdict(cell)))
        assert pd.DataFrame(branched).equals(pd.DataFrame(alone)), tokens  # noise_scale too, bitwise
        assert all(np.isfinite(row["noise_scale"]) for row in alone)
