"""The fit-quality verdict on ground truth: tables drawn from known laws get the verdict they deserve."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import SMALL_GRID
from workflow_scripts.analysis.fit import quality, registry
from workflow_scripts.analysis.fit.experiment import _parser, fit_experiment, main
from workflow_scripts.analysis.fit.laws import DEFAULTS
from workflow_scripts.io import SCHEMA_PATH

THRESHOLDS = DEFAULTS["quality"]
N = np.logspace(4, 7, 10)
D = np.logspace(6, 9, 10)


def law_runs(f, n_values, d_values, seeds=(0, 1), sigma=0.0, seed=0):
    """A runs table of cells (N, D, seed) whose loss is f(N, D), with lognormal noise ``sigma``."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, d, s in itertools.product(n_values, d_values, seeds):
        loss = f(n, d) * (math.exp(rng.normal(0, sigma)) if sigma else 1.0)
        rows.append({"experiment": "truth", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": s,
                     "status": "ok", "N_nonembedding": n, "D": d, "C": 6 * n * d, "val_loss": loss})
    return pd.DataFrame(rows)


def kaplan_n(n, d):
    return 1.7 + 400 * n ** -0.34


def plateau(n, d):
    """A learning transition: flat at 2.15 nats up to 3e7 tokens, then a power law down to a floor of 1.5."""
    return 2.15 if d < 3e7 else 1.5 + 0.65 * (d / 3e7) ** -0.5


def iso_runs(shift=1.0, sigma=0.002, seed=0):
    """An IsoFLOP design from Chinchilla's law (Hoffmann et al. 2022, Eq. 10): 4 budgets x 5 sizes
    spanning 25x around N_opt, all scaled by ``shift``."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in (1e17, 1e18, 1e19, 1e20):
        for n in np.geomspace(0.2, 5, 5) * 0.6 * (c / 6) ** 0.45 * shift:
            d = c / (6 * n)
            loss = (1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28) * math.exp(rng.normal(0, sigma))
            rows.append({"experiment": "truth", "model": f"N{n:.0f}", "data": f"C{c:.0e}", "seed": 0,
                         "C_budget": c, "status": "ok", "N_nonembedding": n, "D": d, "C": 6 * n * d,
                         "val_loss": loss})
    return pd.DataFrame(rows)


def fitted(runs, law, **options):
    fits = fit_experiment(runs, n_boot=100, law_names=[law], parametric_grid=SMALL_GRID, **options)
    return fits["laws"][law]


def test_runs_p_value_is_the_exact_distribution():
    cases = ([1, 1, 1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0, 1], [1, 1, 0, 1, 0, 0, 0, 1, 1], [1, 1, 1, 0, 0])
    for signs in cases:
        signs = np.array(signs, dtype=bool)
        runs = lambda s: 1 + np.count_nonzero(s[1:] != s[:-1])  # noqa: E731
        orders = {p for p in itertools.permutations(signs)}  # distinct arrangements, equally likely
        expected = sum(runs(np.array(p)) <= runs(signs) for p in orders) / len(orders)
        assert quality.runs_p_value(signs) == pytest.approx(expected, rel=1e-12)
    assert quality.runs_p_value(np.ones(5, bool)) == 1.0


@pytest.mark.parametrize("sigma", [0.0, 0.003])
def test_a_known_power_law_is_good_with_and_without_noise(sigma):
    entry = fitted(law_runs(kaplan_n, N, (1e9,), sigma=sigma), "L(N)")
    assert entry["quality"]["verdict"] == "good" and entry["quality"]["reasons"] == []
    # Exact data leave residuals of rounding only: they carry no sign, so the runs test says so.
    assert entry["quality"]["not_judged"] == ([] if sigma else ["runs test: 0 points with a sign < 8"])


def test_a_known_chinchilla_law_is_good():
    runs = law_runs(lambda n, d: 1.8 + 80 * n ** -0.3 + 200 * d ** -0.3, np.logspace(4, 7, 5),
                    np.logspace(5, 8, 5), sigma=0.003)
    assert fitted(runs, "L(N,D)")["quality"] == {"verdict": "good", "reasons": [], "not_judged": []}
    unbooted = fit_experiment(runs, n_boot=0, law_names=["L(N,D)"], parametric_grid=SMALL_GRID)
    assert unbooted["laws"]["L(N,D)"]["quality"]["not_judged"] == [
        "interval of alpha: none (no usable bootstrap resamples)",
        "interval of beta: none (no usable bootstrap resamples)"]


def test_a_learning_transition_is_poor():
    entry = fitted(law_runs(plateau, (1e6,), D, sigma=0.002), "L(D)")
    reasons = entry["quality"]["reasons"]
    assert entry["quality"]["verdict"] == "poor"
    rms = entry["goodness"]["rmse_log"]
    assert f"relative RMS of log-loss residuals {100 * rms:.3g}% > 2%" in reasons
    assert any(r.startswith("residual signs show a systematic pattern: 3 runs in 10 points") for r in reasons)


def test_a_floor_far_below_the_data_is_poor_for_e():
    exact = fitted(law_runs(lambda n, d: 0.005 + 20 * n ** -0.15, N, (1e9,)), "L(N)")
    assert any("pinned at its bound 0" in r for r in exact["quality"]["reasons"]), exact["quality"]
    noisy = fitted(law_runs(lambda n, d: 0.005 + 20 * n ** -0.15, N, (1e9,), sigma=0.002), "L(N)")
    assert noisy["params"]["E"] > 0.01 * noisy["goodness"]["loss_range"][0]  # the point estimate hides it...
    assert any("with interval reaching" in r and "its bound 0" in r for r in noisy["quality"]["reasons"])
    # ...and without E in the form there is no floor to judge.
    pure = fitted(law_runs(lambda n, d: 20 * n ** -0.15, N, (1e9,)), "L(N)", irreducible=False)
    assert pure["quality"]["verdict"] == "good"


def test_largest_cells_off_the_law_fail_the_extrapolation_check():
    saturated = lambda n, d: kaplan_n(min(n, N[-2]), d)  # noqa: E731 - the largest model learns no more
    entry = fitted(law_runs(saturated, N, (1e9,)), "L(N)")
    error = entry["extrapolation"]["mean_abs_relative_error"]
    assert error > 0.05
    assert f"refit without the largest-compute cells misses them by {100 * error:.3g}% > 5%" in \
        entry["quality"]["reasons"]


def test_isoflop_vertices_outside_the_sizes_run_are_poor():
    inside = fit_experiment(iso_runs(), n_boot=50, law_names=["isoflop", "L(N,D)"],
                            parametric_grid=SMALL_GRID)
    assert inside["laws"]["isoflop"]["quality"]["verdict"] == "good"
    assert inside["laws"]["L(N,D)"]["quality"]["verdict"] == "good"  # approaches 2 and 3 agree
    outside = fitted(iso_runs(shift=0.05), "isoflop")
    assert "4 of 4 IsoFLOP vertices outside the sizes run (C = 1e+17, 1e+18, 1e+19, 1e+20) > 0" in \
        outside["quality"]["reasons"]


def test_approaches_that_disagree_are_poor():
    def laws(a1, a2):
        return {"approach1": {"law": "approach1", "a": a1, "ci": {"a": [a1 - 0.01, a1 + 0.01]}},
                "isoflop": {"law": "isoflop", "a": a2, "ci": {"a": None}, "budgets": []},
                "L(N,D)": {"law": "L(N,D)", "params": {}, "form": ""}}
    agree = laws(0.52, 0.48)
    quality.judge_all(agree, {"a": 0.5, "ci": {"a": [0.45, 0.55]}}, THRESHOLDS)
    assert all(e["quality"]["verdict"] == "good" for e in agree.values())
    apart = laws(0.93, 0.5)
    quality.judge_all(apart, {"a": 0.26, "ci": {"a": [0.07, 0.97]}}, THRESHOLDS)
    assert apart["approach1"]["quality"]["reasons"] == [
        "approach 1 a = 0.93 [0.92, 0.94] and approach 2 a = 0.5 differ by 0.43 > 0.1",
        "approach 1 a = 0.93 [0.92, 0.94] and approach 3 a = 0.26 [0.07, 0.97] differ by 0.67 > 0.1"]
    assert apart["isoflop"]["quality"]["reasons"] == [
        "approach 2 a = 0.5 and approach 1 a = 0.93 [0.92, 0.94] differ by 0.43 > 0.1",
        "approach 2 a = 0.5 and approach 3 a = 0.26 [0.07, 0.97] differ by 0.24 > 0.1"]
    assert len(apart["L(N,D)"]["quality"]["reasons"]) == 2


def test_e_is_judged_against_the_generators_optimal_loss():
    runs = law_runs(lambda n, d: 1.8 + 20 * n ** -0.3 + 50 * d ** -0.3, np.logspace(4, 7, 5),
                    np.logspace(5, 8, 5), sigma=0.001)
    right = fit_experiment(runs.assign(optimal_loss=1.8), n_boot=100, law_names=["L(N,D)", "L(N)"],
                           parametric_grid=SMALL_GRID)
    assert right["optimal_loss"] == 1.8 and right["laws"]["L(N,D)"]["quality"]["verdict"] == "good"
    assert right["laws"]["L(N)"]["quality"]["verdict"] == "good"  # E + B/D_max^β lies above 1.8
    # A generator whose floor is 5% lower: L(N,D)'s E is off it; a floor above every E is impossible.
    lower = fit_experiment(runs.assign(optimal_loss=1.71), n_boot=100, law_names=["L(N,D)", "L(N)"],
                           parametric_grid=SMALL_GRID)
    e = lower["laws"]["L(N,D)"]["params"]["E"]
    reason, = lower["laws"]["L(N,D)"]["quality"]["reasons"]
    assert reason.startswith(f"E = {e:.4g} is {100 * (e / 1.71 - 1):.3g}% above the generator's optimal loss 1.71")
    assert lower["laws"]["L(N)"]["quality"]["verdict"] == "good"  # L(N)'s E, 1.8 + B/D_max^β, is no optimum
    higher = fit_experiment(runs.assign(optimal_loss=2.1), n_boot=100, law_names=["L(N,D)", "L(N)"],
                            parametric_grid=SMALL_GRID)
    for law in ("L(N,D)", "L(N)"):
        assert any("below the generator's optimal loss 2.1 (no predictor does better)" in r
                   for r in higher["laws"][law]["quality"]["reasons"]), law


def _just(value, above):
    return value * (1.01 if above else 0.99)


def test_each_threshold_is_respected_on_both_sides():
    poor = fitted(law_runs(plateau, (1e6,), D, sigma=0.002), "L(D)")
    good = fitted(law_runs(kaplan_n, N, (1e9,), sigma=0.003), "L(N)")
    lo, hi = poor["ci"]["alpha"]
    half = (hi - lo) / 2 / poor["params"]["alpha"]
    measured = {  # threshold: (entry, the number it is compared with, words of its reason)
        "max_rms": (poor, poor["goodness"]["rmse_log"], "relative RMS"),
        "max_ci_half_width": (poor, half, "half-width"),
        "max_extrapolation_error": (good, good["extrapolation"]["mean_abs_relative_error"], "misses them by"),
    }
    for key, (entry, value, words) in measured.items():
        assert any(words in r for r in quality.judge(entry, {**THRESHOLDS, key: _just(value, False)})), key
        assert not any(words in r for r in quality.judge(entry, {**THRESHOLDS, key: _just(value, True)})), key
    p = poor["goodness"]["runs_test"]["p_value"]
    pattern = "systematic pattern"
    assert any(pattern in r for r in quality.judge(poor, {**THRESHOLDS, "runs_p": _just(p, True)}))
    assert not any(pattern in r for r in quality.judge(poor, {**THRESHOLDS, "runs_p": _just(p, False)}))
    too_few = {**THRESHOLDS, "runs_p": 0.5, "runs_min_points": 11}  # 10 points
    assert not any(pattern in r for r in quality.judge(poor, too_few))
    alpha = good["params"]["alpha"]
    low = quality.judge(good, {**THRESHOLDS, "min_exponent": _just(alpha, True)})
    high = quality.judge(good, {**THRESHOLDS, "max_exponent": _just(alpha, False)})
    assert low == [f"alpha = {alpha:.3g} at its limit (<= {_just(alpha, True):g})"]
    assert high == [f"alpha = {alpha:.3g} at its limit (>= {_just(alpha, False):g})"]
    assert quality.judge(good, {**THRESHOLDS, "min_exponent": _just(alpha, False)}) == []
    e, lowest = good["params"]["E"], good["goodness"]["loss_range"][0]
    floor = {**THRESHOLDS, "min_floor_fraction": _just(e / lowest, True)}
    assert any(f"E = {e:.3g} pinned at its bound 0" in r for r in quality.judge(good, floor))


def test_bad_thresholds_are_one_line_errors_before_fitting(tmp_path, capsys):
    runs = law_runs(kaplan_n, N, (1e9,))
    with pytest.raises(ValueError, match="unknown quality threshold.*max_rmss; expected some of max_rms"):
        fit_experiment(runs, n_boot=0, thresholds={"max_rmss": 0.02})
    with pytest.raises(ValueError, match=r"quality threshold max_rms = 'x'; expected a finite number"):
        fit_experiment(runs, n_boot=0, thresholds={"max_rms": "x"})
    runs.to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(SystemExit):
        main(["--runs", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "f.json"),
              "--quality", "{max_rms"])
    assert "--quality '{max_rms' is not JSON" in capsys.readouterr().err


def test_cli_warns_once_per_poor_law(tmp_path, capsys):
    law_runs(plateau, (1e6, 1e7), D, sigma=0.002).to_csv(tmp_path / "runs.csv", index=False)
    main(["--runs", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "fits.json"), "--bootstrap", "20",
          "--laws", "L(D),L(N)", "--quality", '{"max_rms": 0.03}'])
    poor = [line for line in capsys.readouterr().err.splitlines() if "poor fit" in line]
    assert len(poor) == 1
    assert poor[0].startswith("warning: truth L(D): poor fit: relative RMS of log-loss residuals")
    assert "> 3%" in poor[0]


def test_defaults_and_law_names_come_from_the_schema():
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        analysis = yaml.safe_load(f)["$defs"]["experiment"]["properties"]["analysis"]["properties"]
    assert analysis["laws"]["items"]["enum"] == list(registry.LAWS)
    assert THRESHOLDS == {k: v["default"] for k, v in analysis["quality"]["properties"].items()}
    args = _parser().parse_args(["--table", "t.csv", "--out", "f.json"])
    defaults = tuple(analysis[k]["default"] for k in ("bootstrap", "seed", "level"))
    assert (args.bootstrap, args.seed, args.level) == defaults
