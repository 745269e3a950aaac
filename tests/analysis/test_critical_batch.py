"""Kaplan's critical batch size (Eq. 5.3) and the laws in S_min and C_min (Eq. 5.4-5.5): hand-computed
values, recovery of known parameters, fits.json entries and skips."""

import json

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.analysis.fit import critical_batch as cb
from workflow_scripts.analysis.fit import kaplan, registry
from workflow_scripts.analysis.fit.experiment import fit_experiment

B_CRIT = {"B_star": 2000.0, "alpha_B": 0.21}
NS = {"N_c": 8.8e13, "S_c": 2.1e3, "alpha_N": 0.076, "alpha_S": 0.76}  # Kaplan et al. 2020, Table 2
BATCH, CONTEXT = 16, 64


def test_s_min_e_min_and_c_min_against_hand_computed_values():
    params = {"B_star": 100.0, "alpha_B": 0.5}
    assert cb.b_crit(params, 2.0) == pytest.approx(25.0)  # 100 / 2^(1/0.5)
    assert cb.s_min(1000, 16, 25.0) == pytest.approx(1000 / 2.5625)  # 1 + 25/16 = 2.5625: 390.24
    tokens = 1000 * 16 * 64
    assert cb.e_min(tokens, 16, 25.0) == pytest.approx(1_024_000 / 1.64)  # 1 + 16/25 = 1.64: 624,390.2
    assert cb.c_min(1e4, 1_024_000 / 1.64) == pytest.approx(3.7463415e10)  # 6 × 1e4 × 624,390.2
    # At B = B_crit the run takes twice the fewest steps and twice the fewest examples (Kaplan Eq. 5.1).
    assert cb.s_min(50, 25, 25.0) == pytest.approx(25) and cb.e_min(50, 25, 25.0) == pytest.approx(25)


def test_b_crit_fit_recovers_known_parameters_inside_its_interval():
    rng = np.random.default_rng(0)
    loss = np.tile(np.geomspace(2.5, 6.0, 15), 4)
    noise = cb.b_crit(B_CRIT, loss) * np.exp(rng.normal(0, 0.1, loss.size))
    fit = cb.fit_b_crit(loss, noise, np.repeat(np.arange(4), 15), n_boot=200, seed=0)
    for name, value in B_CRIT.items():
        lo, hi = fit["ci"][name]
        assert lo <= value <= hi and fit["params"][name] == pytest.approx(value, rel=0.1), (name, fit)
    with pytest.raises(ValueError, match="noise scale has value -1.0"):
        cb.fit_b_crit([3.0, 4.0, 5.0], [1.0, -1.0, 2.0], [0, 1, 1])


def runs_and_curves(with_noise=True):
    """One cell per N whose curve follows L(N, S_min) exactly, S and the noise scale from B_crit(L)."""
    rows, curve_rows = [], []
    for n in np.geomspace(1e5, 1e8, 5):
        s_min = np.geomspace(100, 1e5, 12)
        loss = kaplan.ns_law(NS, n, s_min)
        critical = cb.b_crit(B_CRIT, loss)
        steps = s_min * (1 + critical / BATCH)  # Eq. 5.4 inverted
        cell = {"experiment": "k", "model": f"N{n:.0f}", "data": "D1", "seed": 0, "status": "ok", "N": n,
                "N_nonembedding": n, "D": steps[-1] * BATCH * CONTEXT, "C": 6 * n * steps[-1] * BATCH * CONTEXT}
        for s, l, b in zip(steps, loss, critical):
            curve_rows.append({**cell, "step": s, "tokens": s * BATCH * CONTEXT, "flops": 6 * n * s * BATCH * CONTEXT,
                               "eval_loss": l, **({"noise_scale": b} if with_noise else {})})
        rows.append({**cell, "val_loss": loss[-1], "batch_size": BATCH,
                     **({"noise_scale": critical[-1]} if with_noise else {})})
    return pd.DataFrame(rows), pd.DataFrame(curve_rows)


def test_adjusted_laws_recover_kaplan_parameters_and_are_in_fits_json():
    runs, curves = runs_and_curves()
    fits = fit_experiment(runs, curves=curves, n_boot=20, law_names=[cb.NS_MIN_LAW, cb.C_MIN_LAW])
    ns, cm = fits["laws"][cb.NS_MIN_LAW], fits["laws"][cb.C_MIN_LAW]
    for entry in (ns, cm):
        record = entry["critical_batch"]
        assert record["params"]["B_star"] == pytest.approx(2000, rel=1e-6)
        assert record["params"]["alpha_B"] == pytest.approx(0.21, rel=1e-6) and record["ci"]["alpha_B"]
        assert entry["quality"]["verdict"] in ("good", "poor")
    assert ns["params"]["alpha_S"] == pytest.approx(0.76, rel=1e-3) and ns["x"] == ["N_nonembedding", "S_min"]
    assert ns["params"]["alpha_N"] == pytest.approx(0.076, rel=1e-3)
    # The envelope in C_min: every point is 6 N E_min of its curve point; the loss falls along it.
    front = pd.DataFrame(cm["envelope"])
    assert len(front) >= 3 and np.all(np.diff(front["loss"]) < 0) and np.all(np.diff(front["C_min"]) > 0)
    assert np.isfinite(cm["params"]["alpha"]) and cm["ci"]["alpha"] is not None
    json.dumps(fits, allow_nan=False)


def test_adjusted_laws_apply_only_when_the_noise_scale_was_measured(capsys):
    runs, _ = runs_and_curves()
    plain_runs, plain_curves = runs_and_curves(with_noise=False)
    default = {law.name for law in registry.requested(runs, None, has_curves=True)}
    assert {cb.NS_MIN_LAW, cb.C_MIN_LAW} <= default
    assert not {cb.NS_MIN_LAW, cb.C_MIN_LAW} & {law.name for law in registry.requested(runs, None, False)}
    plain = {law.name for law in registry.requested(plain_runs, None, has_curves=True)}
    assert "L(N,S)" in plain and not {cb.NS_MIN_LAW, cb.C_MIN_LAW} & plain
    named = fit_experiment(plain_runs, curves=plain_curves, n_boot=0, law_names=[cb.C_MIN_LAW])["laws"]
    assert named[cb.C_MIN_LAW]["skipped"] == ("experiment 'k', law L(C_min): critical batch size: " + cb.NOT_MEASURED)
    assert "L(C_min)" in capsys.readouterr().err


def test_critical_batch_figure_panels(tmp_path):
    import matplotlib.pyplot as plt

    from workflow_scripts.analysis.figures.draw import FIGURES, plot_figure

    runs, curves = runs_and_curves()
    fits = fit_experiment(runs, curves=curves, n_boot=0, law_names=[cb.NS_MIN_LAW, cb.C_MIN_LAW])
    fig = FIGURES["critical_batch"](runs, fits, curves=curves)
    noise, s_min, c_min = fig.axes[:3]
    assert len(noise.collections) == 5 and len(s_min.collections) == 5 and len(s_min.lines) == 5
    assert len(c_min.collections) == 2 and not c_min.texts  # curve points and envelope, the law drawn
    plt.close("all")
    plain_runs, plain_curves = runs_and_curves(with_noise=False)
    plain = fit_experiment(plain_runs, curves=plain_curves, n_boot=0, law_names=[cb.NS_MIN_LAW, cb.C_MIN_LAW])
    fig = FIGURES["critical_batch"](plain_runs, plain, curves=plain_curves)
    assert all("not available" in ax.texts[0].get_text() for ax in fig.axes[:3])
    plt.close("all")
    plot_figure("critical_batch", runs, fits, tmp_path / "b.png", tmp_path / "b.pdf", curves=curves)
    assert (tmp_path / "b.png").stat().st_size > 0 and (tmp_path / "b.pdf").stat().st_size > 0


def test_verdict_names_a_critical_batch_size_the_noise_does_not_pin_down():
    from workflow_scripts.analysis.fit import quality
    from workflow_scripts.analysis.fit.laws import DEFAULTS

    entry = {"params": {"alpha": 0.1}, "ci": {"alpha": [0.09, 0.11]},
             "critical_batch": {"params": {"alpha_B": 0.68}, "ci": {"alpha_B": [-0.97, 7.3]}}}
    assert quality.judge(entry, DEFAULTS["quality"]) == [
        "B_crit's alpha_B = 0.68 with interval [-0.97, 7.3] reaching 0: the noise scale shows no fall with the loss"]
    entry["critical_batch"]["ci"]["alpha_B"] = [0.2, 0.22]
    assert quality.judge(entry, DEFAULTS["quality"]) == []
