"""Kaplan et al. (2020)'s joint laws L(N, D) (Eq. 1.5) and L(N, S) (Eq. 1.6): recovery and skips."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from tests.helpers import SMALL_GRID
from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit import kaplan
from workflow_scripts.analysis.fit.experiment import fit_experiment, law_list

# Kaplan et al. (2020), Eq. 1.5 and 1.6 (their Table 2 values).
ND = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}
NS = {"N_c": 8.8e13, "S_c": 2.1e3, "alpha_N": 0.076, "alpha_S": 0.76}


def nd_points(seed=0, sigma=0.003):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e5, 1e9, 6), 5)
    d = np.tile(np.geomspace(1e7, 1e11, 5), 6)
    return n, d, kaplan.nd_law(ND, n, d) * np.exp(rng.normal(0, sigma, n.size))


def ns_points(seed=0, sigma=0.003):
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(1e5, 1e8, 5), 10)
    s = np.tile(np.geomspace(100, 1e5, 10), 5)
    return n, s, kaplan.ns_law(NS, n, s) * np.exp(rng.normal(0, sigma, n.size)), np.repeat(np.arange(5), 10)


def test_gradients_are_analytic_and_correct():
    n, d, y = nd_points()
    lx, ly = np.log(np.vstack([n, d])), np.log(y)
    for theta in ([30.0, 30.0, 0.8, 0.1], [20.0, 25.0, 1.2, 0.3]):
        err = check_grad(lambda t: hf.objective(t, lx, ly, 1.0, 1e-3, kaplan.nd_batch)[0],
                         lambda t: hf.objective(t, lx, ly, 1.0, 1e-3, kaplan.nd_batch)[1], np.array(theta))
        assert err < 1e-6
    n, s, y, _ = ns_points()
    lx, ly = np.log(np.vstack([n, s])), np.log(y)
    err = check_grad(lambda t: hf.objective(t, lx, ly, 1.0, 1e-3, kaplan.ns_batch)[0],
                     lambda t: hf.objective(t, lx, ly, 1.0, 1e-3, kaplan.ns_batch)[1], np.array([2.0, 5.0, 0.1, 0.7]))
    assert err < 1e-6


@pytest.mark.parametrize("which", ["nd", "ns"])
def test_known_parameters_recovered_inside_their_intervals(which):
    if which == "nd":
        truth, fit = ND, kaplan.fit_kaplan_nd(*nd_points(), n_boot=300, seed=0)
    else:
        truth, fit = NS, kaplan.fit_kaplan_ns(*ns_points(), n_boot=300, seed=0)
    assert fit["best_start_on_grid_edge"] is False and fit["n_bootstrap_failed"] < 10
    for name, value in truth.items():
        lo, hi = fit["ci"][name]
        assert lo <= value <= hi, (name, lo, value, hi)
        assert fit["params"][name] == pytest.approx(value, rel=0.2)


def runs_and_curves():
    """Cells whose final loss is Eq. 1.5 and whose curves are Eq. 1.6 in steps (one token per step)."""
    rows, curve_rows = [], []
    for n in np.geomspace(1e5, 1e9, 5):
        for d in np.geomspace(1e7, 1e11, 5):
            cell = {"experiment": "k", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": 0, "status": "ok",
                    "N": n, "N_nonembedding": n, "D": d, "C": 6 * n * d}
            rows.append({**cell, "val_loss": float(kaplan.nd_law(ND, n, d))})
            for step in np.geomspace(10, 1e5, 12).astype(int):
                curve_rows.append({**cell, "step": step, "tokens": step, "flops": 6 * n * step,
                                   "eval_loss": float(kaplan.ns_law(NS, n, step))})
    return pd.DataFrame(rows), pd.DataFrame(curve_rows)


def test_entries_in_fits_json_and_skips(capsys):
    runs, curves = runs_and_curves()
    fits = fit_experiment(runs, n_boot=10, law_names=["kaplan_L(N,D)", "L(N,S)"], curves=curves)
    nd, ns = fits["laws"]["kaplan_L(N,D)"], fits["laws"]["L(N,S)"]
    assert nd["params"]["alpha_D"] == pytest.approx(0.095, rel=1e-3) and len(nd["cells_used"]) == 25
    assert nd["extrapolation"]["mean_abs_relative_error"] < 1e-3
    assert ns["params"]["alpha_S"] == pytest.approx(0.76, rel=1e-3) and ns["x"] == ["N_nonembedding", "step"]
    assert len(ns["cells_used"]) == 5 and ns["goodness"]["n_points"] < 5 * 12  # largest D, warmup left out
    json.dumps(fits, allow_nan=False)
    without = fit_experiment(runs, n_boot=0, law_names=["L(N,S)"])["laws"]["L(N,S)"]
    assert without["skipped"] == "experiment 'k', law L(N,S): no learning curves given (--curves)"
    one_d = fit_experiment(runs[runs.D == runs.D.max()], n_boot=0, law_names=["kaplan_L(N,D)"])
    assert "law kaplan_L(N,D): usable cells: got 5 distinct N, 1 distinct D" in one_d["laws"]["kaplan_L(N,D)"]["skipped"]
    assert "kaplan_L(N,D)" in capsys.readouterr().err
    # By default L(N,S) is fitted only when curves are given.
    assert "L(N,S)" not in fit_experiment(runs, n_boot=0, parametric_grid=SMALL_GRID)["laws"]


def test_law_list_keeps_commas_inside_names():
    assert law_list("L(N),L(N,D),kaplan_L(N,D)") == ["L(N)", "L(N,D)", "kaplan_L(N,D)"]
    assert law_list(" L(N,S) , approach1,") == ["L(N,S)", "approach1"]
