"""Chinchilla's approach 1: the envelope of lowest loss per FLOP recovers a known allocation exponent."""

import json

import numpy as np
import pandas as pd
import pytest

from workflow_scripts.analysis.fit import approach1
from workflow_scripts.analysis.fit.experiment import fit_experiment

# L = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 2): with C = 6ND the optimum is N_opt ∝ C^(β/(α+β)).
E, A, B, ALPHA, BETA = 1.7, 400.0, 410.0, 0.34, 0.28
TRUE_A = BETA / (ALPHA + BETA)


def law(n, d):
    return E + A * n ** -ALPHA + B * d ** -BETA


def grid_runs(n_values=np.geomspace(1e5, 1e9, 13), d_values=np.geomspace(1e6, 1e12, 13), noise=0.0, seed=0):
    """Final losses of every (N, D) cell, C = 6ND, one seed."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"experiment": "a1", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": 0, "status": "ok",
                          "N": n, "N_nonembedding": n, "D": d, "C": 6 * n * d,
                          "val_loss": law(n, d) * np.exp(rng.normal(0, noise))}
                         for n in n_values for d in d_values])


def curves_of(runs, points=60):
    """Each cell's learning curve as an ideal schedule would give it: L(N, t) at t tokens seen."""
    rows = []
    for r in runs.itertuples():
        for t in np.geomspace(r.D / 1e6, r.D, points):
            rows.append({"experiment": r.experiment, "model": r.model, "data": r.data, "seed": r.seed, "N": r.N,
                         "N_nonembedding": r.N_nonembedding, "D": r.D, "status": "ok", "step": int(t),
                         "tokens": t, "flops": 6 * r.N * t, "eval_loss": law(r.N, t)})
    return pd.DataFrame(rows)


def test_final_points_recover_the_exponent_inside_the_interval():
    points, mode = approach1.traces(grid_runs(noise=0.003), None, "auto")
    assert mode == "final" and points["trace"].nunique() == 13
    fit = approach1.fit_approach1(points, n_boot=100, seed=0)
    assert fit["a"] == pytest.approx(TRUE_A, abs=0.03)
    lo, hi = fit["ci"]["a"]
    assert lo <= TRUE_A <= hi and lo <= fit["a"] <= hi
    assert fit["a"] + fit["b"] == pytest.approx(1.0, abs=1e-6)  # D_opt = C / (6 N_opt) exactly here
    assert fit["n_bootstrap_failed"] < 10


def test_every_curve_point_with_one_data_size_per_model():
    # One (long) run per size: auto falls back to every point of the curves, as Chinchilla used them.
    runs = grid_runs(d_values=(1e12,))
    points, mode = approach1.traces(runs, curves_of(runs), "auto")
    assert mode == "all"
    fit = approach1.fit_approach1(points, n_boot=20, seed=0)
    assert fit["a"] == pytest.approx(TRUE_A, abs=0.03)


def test_a_grid_whose_largest_data_sizes_decide_the_winners_is_poor():
    # 13 sizes at 3 data sizes over one decade: every size would want more data than it had, so the
    # winner changes where the previous one's data ends, and a lands far from the truth (0.87 vs 0.45).
    starved = fit_experiment(grid_runs(d_values=np.geomspace(1e6, 1e7, 3)), n_boot=20,
                             law_names=["approach1"])["laws"]["approach1"]
    assert starved["switches"] == {"n": 10, "at_data_edge": 9} and abs(starved["a"] - TRUE_A) > 0.3
    assert ("9 of 10 changes of the envelope's winner come where the winner's curve ends (its largest data "
            "size): 90% > 50%; N_opt follows the grid's data sizes, not the losses") in starved["quality"]["reasons"]
    full = fit_experiment(grid_runs(), n_boot=20, law_names=["approach1"])["laws"]["approach1"]
    assert full["switches"] == {"n": 11, "at_data_edge": 0}
    assert not any("envelope's winner" in r for r in full["quality"]["reasons"])


def test_entry_in_fits_json_and_skip_messages(capsys):
    runs = grid_runs(n_values=np.geomspace(1e5, 1e9, 5), d_values=np.geomspace(1e6, 1e12, 7))
    fits = fit_experiment(runs, n_boot=20, law_names=["approach1"])
    entry = fits["laws"]["approach1"]
    assert entry["points_mode"] == "final" and entry["x"] == "C"
    assert set(entry["ci"]) == {"a", "b", "k_N", "k_D"} and entry["n_bootstrap"] == 20
    assert len(entry["points"]) == entry["grid_points"] > 50 and {"C", "N_opt", "D_opt", "loss"} == set(entry["points"][0])
    assert sum(w["n_points"] for w in entry["winners"]) == entry["grid_points"]
    json.dumps(fits, allow_nan=False)
    # One model size: nothing to choose between; every point without curves: no curves.
    one = fit_experiment(runs[runs.N == runs.N.min()], n_boot=5, law_names=["approach1"])["laws"]["approach1"]
    assert one["skipped"].startswith("experiment 'a1', law approach1: ")
    assert "no learning curves" in one["skipped"]
    forced = fit_experiment(runs, n_boot=5, law_names=["approach1"], approach1_points="all")["laws"]["approach1"]
    assert "no learning curves" in forced["skipped"]
    single = grid_runs(n_values=(1e5, 1e9), d_values=(1e6, 1e7))  # the ranges of C do not overlap
    why = fit_experiment(single, n_boot=5, law_names=["approach1"])["laws"]["approach1"]["skipped"]
    assert "two model sizes" in why
    assert "law approach1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="approach 1 points 'best'"):
        fit_experiment(runs, law_names=["approach1"], approach1_points="best")
