"""Fitting: recovery of known laws, bootstrap intervals, one experiment's fits.json, CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from tests.helpers import REPO, SMALL_GRID
from workflow_scripts.analysis.fit.experiment import fit_experiment, main
from workflow_scripts.analysis.fit.laws import extrapolation, frontier
from workflow_scripts.analysis.fit.power_law import _objective, bootstrap_power_law, fit_power_law, law

# A small initialisation grid for L(N,D) (243 starts) keeps the experiment tests fast.
TRUE = {"E": 1.7, "A": 400.0, "alpha": 0.34}


def noisy_law(seed=0, sigma=0.01, n_x=8, n_seeds=3):
    """x log-spaced over 3 decades, n_seeds points per x, multiplicative lognormal noise."""
    rng = np.random.default_rng(seed)
    x = np.repeat(np.logspace(3, 6, n_x), n_seeds)
    y = (TRUE["E"] + TRUE["A"] * x ** -TRUE["alpha"]) * np.exp(rng.normal(0, sigma, x.size))
    return x, y


def test_fit_is_exact_on_noiseless_data():
    x = np.logspace(3, 6, 10)
    fit = fit_power_law(x, TRUE["E"] + TRUE["A"] * x ** -TRUE["alpha"])
    for name, value in TRUE.items():
        assert fit["params"][name] == pytest.approx(value, rel=1e-3)
    assert fit["goodness"]["rmse_log"] < 1e-6
    assert fit["goodness"]["n_points"] == 10


def test_fit_recovers_known_parameters_inside_bootstrap_interval():
    x, y = noisy_law()
    fit = fit_power_law(x, y)
    assert fit["params"]["alpha"] == pytest.approx(TRUE["alpha"], abs=0.05)
    assert fit["goodness"]["r2_log"] > 0.99 and fit["goodness"]["rmse_log"] < 0.02
    assert fit["best_start_on_grid_edge"] is False
    boot = bootstrap_power_law(x, y, groups=x, n_boot=300, seed=0)
    for name, value in TRUE.items():
        lo, hi = boot["ci"][name]
        assert lo <= value <= hi, (name, lo, hi)
        assert lo <= fit["params"][name] <= hi
    assert boot["n_failed"] < 10


def test_pure_power_law():
    x = np.logspace(2, 5, 12)
    y = 50.0 * x ** -0.2 * np.exp(np.random.default_rng(1).normal(0, 0.005, x.size))
    fit = fit_power_law(x, y, irreducible=False)
    assert fit["params"]["E"] == 0.0
    assert fit["params"]["alpha"] == pytest.approx(0.2, abs=0.01)
    assert fit["params"]["A"] == pytest.approx(50.0, rel=0.05)
    boot = bootstrap_power_law(x, y, n_boot=200, irreducible=False)
    assert boot["ci"]["alpha"][0] <= 0.2 <= boot["ci"]["alpha"][1]


def test_best_start_on_grid_edge_is_reported():
    x = np.logspace(3, 6, 10)
    y = TRUE["E"] + TRUE["A"] * x ** -TRUE["alpha"]
    # The interior start (alpha 0.35) reaches the optimum, so the grid is wide enough...
    inner = fit_power_law(x, y, grid={"alpha": [0.3, 0.35, 0.4], "e": [0.5], "a": [6.0]})
    assert inner["best_start_on_grid_edge"] is False
    assert inner["best_start"] == {"a": 6.0, "alpha": 0.35, "e": 0.5}
    # ...while a grid with no interior point can only report an edge start.
    edge = fit_power_law(x, y, grid={"alpha": [0.0, 2.0], "e": [-1.0, 1.0], "a": [0.0, 25.0]})
    assert edge["best_start_on_grid_edge"] is True


def test_gradient_is_analytic_and_correct():
    x, y = noisy_law()
    lx, ly = np.log(x), np.log(y)
    for theta in ([5.0, 0.3, 0.5], [10.0, 1.0, -1.0], [0.0, 0.0, 1.0]):
        err = check_grad(lambda t: _objective(t, lx, ly, 1e-3)[0], lambda t: _objective(t, lx, ly, 1e-3)[1],
                         np.array(theta))
        assert err < 1e-6


@pytest.mark.parametrize("x, y, match", [
    ([1, 2, 3, -4], [1, 1, 1, 1], "finite and positive"),
    ([1, 2, 2, 1], [3, 2, 2, 3], "3 distinct"),
    ([1, 2, 3], [1, 2], "differ in length"),
])
def test_bad_input_is_a_clear_error(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, y)


def test_bootstrap_is_deterministic_given_seed():
    x, y = noisy_law(n_x=6, n_seeds=2)
    a = bootstrap_power_law(x, y, n_boot=40, seed=3)
    b = bootstrap_power_law(x, y, n_boot=40, seed=3)
    c = bootstrap_power_law(x, y, n_boot=40, seed=4)
    assert a["ci"] == b["ci"]
    pd.testing.assert_frame_equal(a["samples"], b["samples"])
    assert a["ci"] != c["ci"]


def test_bootstrap_resamples_groups_together():
    x = np.repeat([10.0, 100.0, 1000.0], 3)
    y = 5.0 * x ** -0.3 * np.exp(np.random.default_rng(0).normal(0, 0.01, x.size))
    # One group: every resample is the whole data, so the interval has no width.
    whole = bootstrap_power_law(x, y, groups=np.zeros(x.size), n_boot=50, irreducible=False)
    assert whole["n_failed"] == 0 and whole["ci"]["alpha"][0] == whole["ci"]["alpha"][1]
    # Groups = x: a resample of 3 groups holds a single x (too few for a line) with
    # probability 3/3³ ≈ 0.11; resampling the 9 points one by one, only 3/3⁹ ≈ 0.0002.
    by_x = bootstrap_power_law(x, y, groups=x, n_boot=400, irreducible=False)
    assert 0.06 < by_x["n_failed"] / 400 < 0.17
    assert len(by_x["samples"]) == 400 - by_x["n_failed"]


def synthetic_runs(n_values=(1e4, 3e4, 1e5, 3e5, 1e6), d_values=(1e5, 1e6), seeds=(0, 1), seed=0):
    """A runs table from L = E + A/N^0.3 + B/D^0.3 (Hoffmann et al. 2022, Eq. 2) with noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in n_values:
        for d in d_values:
            for s in seeds:
                loss = (1.8 + 80 * n ** -0.3 + 200 * d ** -0.3) * math.exp(rng.normal(0, 0.005))
                rows.append({"experiment": "synth", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": s,
                             "status": "ok", "N": 1.2 * n, "N_nonembedding": n, "D": d, "C": 6 * n * d,
                             "val_loss": loss, "optimal_loss": 1.8})
    return pd.DataFrame(rows)


def test_fit_experiment_laws_exclusions_and_skips(capsys):
    runs = synthetic_runs()
    runs.loc[(runs.model == "N30000") & (runs.data == "D1000000") & (runs.seed == 1), ["status", "val_loss"]] = \
        ["diverged", np.nan]
    runs.loc[(runs.model == "N100000") & (runs.data == "D1000000") & (runs.seed == 0), "val_loss"] = np.nan
    fits = fit_experiment(runs, n_boot=30, seed=0, parametric_grid=SMALL_GRID)
    assert fits["format_version"] == 1 and fits["experiment"] == "synth"
    assert fits["optimal_loss"] == pytest.approx(1.8)
    ln = fits["laws"]["L(N)"]
    assert ln["selection"] == "D = 1000000" and ln["x"] == "N_nonembedding" and ln["y"] == "val_loss"
    assert ln["params"]["alpha"] == pytest.approx(0.3, abs=0.05)
    assert set(ln["ci"]) == {"E", "A", "alpha"} and ln["ci_level"] == 0.95 and ln["n_bootstrap"] == 30
    reasons = {e["cell"]: e["reason"] for e in ln["cells_excluded"]}
    assert "diverged" in reasons["N30000/D1000000/1"]
    assert "val_loss" in reasons["N100000/D1000000/0"]
    assert len(ln["cells_used"]) == 8 and "N30000/D1000000/1" not in ln["cells_used"]
    # Only two data sizes: L(D) cannot be fitted, and says so without stopping the rest.
    ld = fits["laws"]["L(D)"]
    assert set(ld) == {"law", "skipped"}
    assert "'synth'" in ld["skipped"] and "L(D)" in ld["skipped"] and "2 distinct" in ld["skipped"]
    assert "warning" in capsys.readouterr().err
    assert ln["warnings"] == []  # 5 distinct N, every resample usable often enough
    json.dumps(fits, allow_nan=False)  # valid JSON: no NaN anywhere


def test_fit_experiment_all_cells_excluded_is_not_fatal():
    runs = synthetic_runs()
    runs["status"] = "diverged"
    runs["optimal_loss"] = np.nan
    fits = fit_experiment(runs, n_boot=5)
    assert all("skipped" in law for law in fits["laws"].values())
    assert "skipped" in fits["compute_optimal"]
    assert fits["optimal_loss"] is None


def test_fit_experiment_rejects_ambiguous_tables():
    runs = pd.concat([synthetic_runs(), synthetic_runs().assign(experiment="other")])
    with pytest.raises(ValueError, match="2 experiments"):
        fit_experiment(runs, n_boot=5)
    with pytest.raises(ValueError, match="lacks column"):
        fit_experiment(synthetic_runs().drop(columns="val_loss"), n_boot=5)


def test_cli_writes_fits_json(tmp_path):
    runs = synthetic_runs(d_values=(1e5, 1e6, 1e7), seeds=(0,))
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "out" / "fits.json"
    proc = subprocess.run(
        [sys.executable, "-m", "workflow_scripts.analysis.fit.experiment", "--runs", str(tmp_path / "runs.csv"), "--out", str(out),
         "--bootstrap", "20", "--seed", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    fits = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in fits.json"))
    # No curves given: every law but L(N,S); approach 1 from the final losses across data sizes.
    assert set(fits["laws"]) == {"L(N)", "L(D)", "L(C)", "L(N,D)", "kaplan_L(N,D)", "approach1"}
    assert all("skipped" not in law for law in fits["laws"].values())
    assert fits["laws"]["approach1"]["points_mode"] == "final"
    assert fits["compute_optimal"]["a"] + fits["compute_optimal"]["b"] == pytest.approx(1.0)
    assert fits["provenance"]["config"]["n_bootstrap"] == 20
    assert "L(N): E=" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "workflow_scripts.analysis.fit.experiment", "--runs", str(tmp_path / "nope.csv"),
                          "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "error:" in bad.stderr


def test_fit_experiment_parametric_law_and_compute_optimal(capsys):
    runs = synthetic_runs(d_values=(1e5, 1e6, 1e7))
    fits = fit_experiment(runs, n_boot=30, seed=0, parametric_grid=SMALL_GRID)
    law = fits["laws"]["L(N,D)"]
    assert law["x"] == ["N_nonembedding", "D"] and law["selection"] == "all usable cells"
    assert law["params"]["alpha"] == pytest.approx(0.3, abs=0.05)
    assert law["params"]["beta"] == pytest.approx(0.3, abs=0.05)
    assert set(law["ci"]) == {"E", "A", "B", "alpha", "beta"} and law["n_bootstrap"] == 30
    assert len(law["cells_used"]) == 30 and law["best_start_on_grid_edge"] is False
    opt = fits["compute_optimal"]
    assert opt["law"] == "L(N,D)" and opt["a"] == pytest.approx(0.5, abs=0.05)
    assert opt["a"] + opt["b"] == pytest.approx(1.0) and opt["ci"]["a"][0] <= opt["a"] <= opt["ci"]["a"][1]
    json.dumps(fits, allow_nan=False)


def test_fit_experiment_skips_parametric_law_with_one_data_size(capsys):
    fits = fit_experiment(synthetic_runs(d_values=(1e6,)), n_boot=5, parametric_grid=SMALL_GRID)
    skipped = fits["laws"]["L(N,D)"]["skipped"]
    assert "'synth'" in skipped and "L(N,D)" in skipped and "1 distinct D" in skipped
    assert fits["compute_optimal"] == {"law": "L(N,D)", "skipped": skipped}
    assert "L(N,D)" in capsys.readouterr().err


def chinchilla_table(path, seed=0):
    """An IsoFLOP design from L = 1.69 + 406.4/N^0.34 + 410.7/D^0.28 with noise: 4 budgets × 5 sizes."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in (1e18, 1e19, 1e20, 1e21):
        for n in np.geomspace(1e-3, 1e-1, 5) * np.sqrt(c):
            d = c / (6 * n)
            loss = (1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28) * math.exp(rng.normal(0, 0.002))
            rows.append({"params": n, "tokens": d, "flops": c, "final loss": loss})
    pd.DataFrame(rows).to_csv(path, index=False)


def run_fit(*args):
    """The command in this process (its imports are already paid): (exit message or None)."""
    try:
        main([str(a) for a in args])
    except SystemExit as stop:
        return stop.code
    return None


def test_cli_table_writes_the_contract(tmp_path, capsys):
    chinchilla_table(tmp_path / "t.csv")
    out = tmp_path / "fits.json"
    assert run_fit("--table", tmp_path / "t.csv", "--n", "params", "--d", "tokens", "--loss", "final loss",
                   "--c", "flops", "--out", out, "--bootstrap", "10", "--seed", "2") is None
    fits = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in fits.json"))
    p = fits["parametric"]
    for name in ("E", "A", "B", "alpha", "beta"):
        assert p[name] > 0 and len(p["ci"][name]) == 2
    assert p["alpha"] == pytest.approx(0.34, abs=0.05) and p["beta"] == pytest.approx(0.28, abs=0.05)
    assert isinstance(p["best_start_on_grid_edge"], bool)
    opt = fits["compute_optimal"]
    assert opt["a"] + opt["b"] == pytest.approx(1.0) and set(opt["ci"]) >= {"a", "b"}
    assert len(fits["isoflops"]["budgets"]) == 4 and "samples" not in fits["isoflops"]
    assert fits["provenance"]["table"] == str(tmp_path / "t.csv")
    assert fits["provenance"]["config"]["n_bootstrap"] == 10 and "git_revision" in fits["provenance"]
    stdout = capsys.readouterr().out
    assert "L(N,D): E=" in stdout and "IsoFLOP" in stdout


def test_cli_table_bad_input_is_one_line(tmp_path):
    table = pd.DataFrame({"N": [1e6, 2e6, 4e6, 1e6, 2e6, 4e6], "D": [1e8] * 3 + [1e9] * 3, "L": [3.0] * 6})
    table.to_csv(tmp_path / "ok.csv", index=False)
    table.assign(D=[1e8, 1e8, -1.0, 1e9, 1e9, 1e9]).to_csv(tmp_path / "neg.csv", index=False)
    table.head(4).to_csv(tmp_path / "few.csv", index=False)
    out = tmp_path / "f.json"
    cases = [
        (("--table", tmp_path / "nope.csv", "--n", "N", "--d", "D", "--loss", "L"), "nope.csv not found"),
        (("--table", tmp_path / "ok.csv", "--n", "N", "--d", "tokens", "--loss", "L"),
         "column 'tokens' (--d)"),
        (("--table", tmp_path / "neg.csv", "--n", "N", "--d", "D", "--loss", "L"),
         "value -1.0 in data row 3"),
        (("--table", tmp_path / "few.csv", "--n", "N", "--d", "D", "--loss", "L"), "4 rows, fewer than the law's 5 parameters"),
    ]
    for args, message in cases:
        error = run_fit(*args, "--out", out, "--bootstrap", "2")  # sys.exit(text): stderr, exit status 1
        assert isinstance(error, str) and error.startswith("error: ") and message in error, error
        assert len(error.splitlines()) == 1 and not out.exists()


def law_runs(loss, n_values=(1e4, 3e4, 1e5, 3e5, 1e6), d_values=(1e5, 1e6), seeds=(0,)):
    """A runs table whose final losses are ``loss(N, D)`` exactly, C = 6ND."""
    return pd.DataFrame([{"experiment": "exact", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": s,
                          "status": "ok", "N": n, "N_nonembedding": n, "D": d, "C": 6 * n * d,
                          "val_loss": loss(n, d)} for n in n_values for d in d_values for s in seeds])


def test_frontier_keeps_the_cells_no_cheaper_cell_beats():
    runs = pd.DataFrame({"N_nonembedding": [1, 2, 3, 4, 5, 5], "D": [1, 1, 1, 1, 1, 1],
                         "C": [10.0, 20, 30, 40, 50, 50], "val_loss": [3.0, 2.5, 2.7, 2.0, 1.9, 2.1],
                         "seed": [0, 0, 0, 0, 0, 1]})
    on = frontier(runs)
    # C=30 (2.7) is beaten by the cheaper C=20 (2.5); C=50's seeds average 2.0, not below 2.0 at C=40.
    assert on["C"].tolist() == [10.0, 20, 40]
    runs.loc[5, "val_loss"] = 1.8  # now its mean 1.85 beats 2.0: both seeds are kept
    assert frontier(runs)["C"].tolist() == [10.0, 20, 40, 50, 50]


def test_l_of_c_recovers_a_known_law_on_the_frontier():
    def law(c):
        return 1.5 + 100 * c ** -0.2

    rows = []
    for i in range(6):
        c = 1e12 * 4.0 ** i
        rows.append({"model": f"m{i}", "data": "D1", "C": c, "val_loss": law(c)})
        rows.append({"model": f"w{i}", "data": "D2", "C": 2 * c, "val_loss": law(c) + 0.3})  # wasteful
    runs = pd.DataFrame(rows).assign(experiment="c", seed=0, status="ok", N_nonembedding=range(12), D=1e6)
    fits = fit_experiment(runs, n_boot=10, law_names=["L(C)"])
    entry = fits["laws"]["L(C)"]
    assert set(fits["laws"]) == {"L(C)"} and entry["x"] == "C" and "frontier" in entry["selection"]
    assert sorted(entry["cells_used"]) == [f"m{i}/D1/0" for i in range(6)]
    assert entry["params"]["alpha"] == pytest.approx(0.2, rel=1e-3)
    assert entry["params"]["E"] == pytest.approx(1.5, rel=1e-3)
    assert set(entry["ci"]) == {"E", "A", "alpha"} and entry["n_bootstrap"] == 10
    few = fit_experiment(runs[runs.model.isin(["m0", "m1", "w0"])], n_boot=5, law_names=["L(C)"])
    skipped = few["laws"]["L(C)"]["skipped"]
    assert "'c'" in skipped and "L(C)" in skipped and "2 distinct C" in skipped


def test_law_switches_and_irreducible(capsys):
    runs = law_runs(lambda n, d: 1.8 + 80 * n ** -0.3 + 200 * d ** -0.3)
    fits = fit_experiment(runs, n_boot=5, law_names=["L(N)", "L(C)"], irreducible=False)
    assert list(fits["laws"]) == ["L(N)", "L(C)"]
    assert "not requested" in fits["compute_optimal"]["skipped"]
    assert fits["laws"]["L(N)"]["params"]["E"] == 0 and fits["laws"]["L(N)"]["form"] == "L = A * N^-alpha"
    assert fits["provenance"]["config"]["irreducible"] is False
    # By default every law that applies: no isoflop on a grid of data sizes; named, it says why not.
    default = fit_experiment(runs, n_boot=0, parametric_grid=SMALL_GRID)
    assert list(default["laws"]) == ["L(N)", "L(D)", "L(C)", "L(N,D)", "kaplan_L(N,D)", "approach1"]
    iso = fit_experiment(runs, n_boot=0, law_names=["isoflop"])["laws"]["isoflop"]
    assert "not an IsoFLOP grid" in iso["skipped"]
    with pytest.raises(ValueError, match="unknown law.*L\\(X\\)"):
        fit_experiment(runs, law_names=["L(X)"])


def test_isoflop_law_on_a_budget_grid():
    rows = []
    for c in (1e15, 1e16, 1e17):
        n_opt = 0.1 * c ** 0.5
        for k in (0.25, 0.5, 1, 2, 4):
            n = n_opt * k
            rows.append({"model": f"N{n:.0f}", "data": f"C{c:.0e}", "N_nonembedding": n, "D": c / (6 * n),
                         "C": c, "val_loss": 2 + 0.1 * np.log(k) ** 2 + 10 * c ** -0.1})
    runs = pd.DataFrame(rows).assign(experiment="iso", seed=0, status="ok")
    fits = fit_experiment(runs, n_boot=10, law_names=["isoflop"])
    assert fits["laws"]["isoflop"]["a"] == pytest.approx(0.5, abs=1e-6)
    assert "isoflop" in fit_experiment(runs, n_boot=0, law_names=None, parametric_grid=SMALL_GRID)["laws"]
    # metrics.json's C_budget names the budget whatever the data name says.
    budgeted = runs.assign(C_budget=runs["data"].str[1:].astype(float), data=[f"x{i}" for i in range(len(runs))])
    assert fit_experiment(budgeted, n_boot=0, law_names=["isoflop"])["laws"]["isoflop"]["a"] == pytest.approx(0.5)


def test_extrapolation_is_exact_on_a_power_law_and_not_on_a_bent_curve():
    exact = law_runs(lambda n, d: 1.8 + 80 * n ** -0.3 + 200 * d ** -0.3, d_values=(1e5, 3e5, 1e6, 1e7))
    fits = fit_experiment(exact, n_boot=0, parametric_grid=SMALL_GRID)
    for law in ("L(N)", "L(D)", "L(C)", "L(N,D)"):
        check = fits["laws"][law]["extrapolation"]
        assert check["held_out_compute_values"] == 1 and len(check["held_out"]) >= 1
        assert check["held_out"][0]["cell"] == "N1000000/D10000000/0"  # the largest compute
        if law != "L(C)":  # the frontier of an L(N,D) grid is not itself an exact power law in C
            assert check["mean_abs_relative_error"] < 1e-4, (law, check)
    bent = law_runs(lambda n, d: 1.8 + 80 * n ** -0.3 + 0.05 * (np.log10(n) - 4) ** 2, d_values=(1e6,))
    check = fit_experiment(bent, n_boot=0, law_names=["L(N)"])["laws"]["L(N)"]["extrapolation"]
    assert check["mean_abs_relative_error"] > 1e-3  # vs ~1e-13 on the exact law
    assert check["held_out"][0]["predicted"] < check["held_out"][0]["actual"]  # the curve bends up
    assert check["n_points_fitted"] == 4
    three = fit_experiment(law_runs(lambda n, d: 2 + n ** -0.3, n_values=(1e4, 1e5, 1e6), d_values=(1e6,)),
                           n_boot=0, law_names=["L(N)"])["laws"]["L(N)"]["extrapolation"]
    assert "need at least 3 distinct x values, got 2" in three["skipped"]


def test_config_law_switches_reach_the_fit_rule(tiny_config, tmp_path, run_snakemake):
    from tests.helpers import write_config

    tiny_config["experiments"]["tiny"]["analysis"].update(laws=["L(N)", "L(N,D)"], irreducible=False)
    path = write_config(tmp_path / "c.yaml", tiny_config)
    dry = run_snakemake(tmp_path, "-n", "-p", "--configfile", str(path))
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "--laws 'L(N),L(N,D)' --no-irreducible" in dry.stdout
    tiny_config["experiments"]["tiny"]["analysis"]["laws"] = ["L(N)", "L(X)"]
    bad = run_snakemake(tmp_path, "-n", "--configfile", str(write_config(path, tiny_config)))
    assert bad.returncode != 0 and "experiments.tiny.analysis.laws.1 = \"L(X)\": expected one of" in bad.stderr


def test_extrapolation_of_a_diverged_refit_is_skipped():
    cells = law_runs(lambda n, d: 2 + n ** -0.3)
    check = extrapolation(cells, lambda kept: {"E": 0.0, "A": np.inf, "alpha": 0.5},
                          lambda params, held: law(params, held["N_nonembedding"]))
    assert "diverged" in check["skipped"] and "A=inf" in check["skipped"]
    json.dumps(check, allow_nan=False)
