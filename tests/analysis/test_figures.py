"""Figures: both formats written, and still written when a law was skipped or an input is missing."""

import copy
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tests.helpers import SMALL_GRID, runs_table, write_config
from workflow_scripts.analysis.compare import main as compare_main
from workflow_scripts.analysis.figures.allocation import accuracy_frontier
from workflow_scripts.analysis.figures.curves import compute_frontier
from workflow_scripts.analysis.figures.draw import FIGURES, main, plot_figure
from workflow_scripts.analysis.figures.inputs import load_curves
from workflow_scripts.analysis.fit.experiment import fit_experiment
from workflow_scripts.analysis.fit.power_law import fit_power_law

NEW_FIGURES = tuple(name for name in FIGURES if name not in ("loss_vs_N", "loss_vs_D"))


def curves_table(runs, points=6):
    """curves.parquet's rows for each cell: loss falling with tokens towards the cell's final loss."""
    rows = []
    for _, r in runs.iterrows():
        for step in range(points + 1):  # step 0: zero tokens and FLOPs, as train writes it
            tokens = r["D"] * step / points
            rows.append({**{k: r[k] for k in ("experiment", "model", "data", "seed", "N", "N_nonembedding",
                                                "D", "status")},
                         "step": step, "tokens": tokens, "flops": 6 * r["N"] * tokens, "lr": 1e-3,
                         "eval_loss": r["val_loss"] + 3 * (1 - step / points), "train_loss": np.nan})
    return pd.DataFrame(rows)


def isoflop_runs(budgets=(1e15, 1e16, 1e17)):
    rows = [{"experiment": "iso", "model": f"N{n:.0f}", "data": f"C{c:.0e}", "seed": 0, "status": "ok",
             "N": n, "N_nonembedding": n, "D": c / (6 * n), "C": c, "C_budget": c,
             "val_loss": 1.7 + 400 * n ** -0.34 + 410 * (c / (6 * n)) ** -0.28}
            for c in budgets for n in np.geomspace(1e5, 1e8, 6)]
    return pd.DataFrame(rows)


def assert_figures(png, pdf):
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
    assert not [p for p in png.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


@pytest.fixture(scope="module")
def fits():
    return fit_experiment(runs_table(), n_boot=20, parametric_grid=SMALL_GRID)


def test_both_figures_in_both_formats(tmp_path, fits):
    runs = runs_table()
    before = dict(plt.rcParams)
    plot_figure("loss_vs_N", runs, fits, tmp_path / "n.png", tmp_path / "n.pdf")
    plot_figure("loss_vs_D", runs, fits, tmp_path / "d.png", tmp_path / "d.pdf")
    assert_figures(tmp_path / "n.png", tmp_path / "n.pdf")
    assert_figures(tmp_path / "d.png", tmp_path / "d.pdf")
    assert dict(plt.rcParams) == before  # the style does not leak out of the figure
    assert plt.get_fignums() == []  # figures are closed
    # Three data sizes for three parameters: the L(D) entry says its interval is too narrow.
    assert any("understates" in w for w in fits["laws"]["L(D)"]["warnings"])


def test_skipped_law_and_no_optimal_loss(tmp_path):
    runs = runs_table(d_values=(1e5, 1e6), n_values=(1e4, 3e4, 1e5))
    runs["optimal_loss"] = np.nan
    fits = fit_experiment(runs, n_boot=5, parametric_grid=SMALL_GRID)
    assert "skipped" in fits["laws"]["L(D)"] and fits["optimal_loss"] is None
    plot_figure("loss_vs_D", runs, fits, tmp_path / "d.png", tmp_path / "d.pdf")
    assert_figures(tmp_path / "d.png", tmp_path / "d.pdf")
    # A fits.json with every law skipped and no usable cell still gives a figure.
    runs["status"] = "diverged"
    empty = {"experiment": "synth", "optimal_loss": None, "laws": {"L(N)": {"law": "L(N)", "skipped": "why"}}}
    plot_figure("loss_vs_N", runs, empty, tmp_path / "n.png", tmp_path / "n.pdf")
    assert (tmp_path / "n.png").stat().st_size > 0


def test_cli_from_files(tmp_path, fits):
    runs_table().to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "fits.json").write_text(json.dumps(fits))
    out = tmp_path / "figures"
    main(["--runs", str(tmp_path / "runs.csv"), "--fits", str(tmp_path / "fits.json"),
          "--figure", "loss_vs_N", str(out / "loss_vs_N.png"), str(out / "loss_vs_N.pdf"),
          "--figure", "loss_vs_D", str(out / "loss_vs_D.png"), str(out / "loss_vs_D.pdf")])
    assert_figures(out / "loss_vs_N.png", out / "loss_vs_N.pdf")
    assert_figures(out / "loss_vs_D.png", out / "loss_vs_D.pdf")
    with pytest.raises(SystemExit):
        main(["--runs", str(tmp_path / "runs.csv"), "--fits", str(tmp_path / "fits.json")])


@pytest.fixture(scope="module")
def fits_with_lc(fits):
    """fits.json with an L(C) entry as the fit stage writes it: fitted to frontier cells' final losses."""
    runs = runs_table().query("status == 'ok'").sort_values("C")
    frontier = runs[runs["val_loss"] <= runs["val_loss"].cummin()]
    law = fit_power_law(frontier["C"], frontier["val_loss"])
    cells = [f"{r.model}/{r.data}/{r.seed}" for r in frontier.itertuples()]
    entry = {"law": "L(C)", "x": "C", "y": "val_loss", "params": law["params"], "ci": {"alpha": [0.1, 0.3]},
             "cells_used": cells}
    return {**fits, "laws": {**fits["laws"], "L(C)": entry}}


@pytest.mark.parametrize("name", NEW_FIGURES)
def test_every_figure_in_both_formats(tmp_path, fits_with_lc, name):
    runs = runs_table()
    plot_figure(name, runs, fits_with_lc, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf",
                curves=curves_table(runs))
    assert_figures(tmp_path / f"{name}.png", tmp_path / f"{name}.pdf")
    assert plt.get_fignums() == []


def test_parameter_outside_its_bootstrap_interval_is_drawn(tmp_path, fits_with_lc):
    # A percentile interval need not contain the estimate (seen on real runs).
    law = fits_with_lc["laws"]["L(C)"]
    alpha = law["params"]["alpha"]
    fits = {**fits_with_lc, "laws": {**fits_with_lc["laws"], "L(C)": {**law, "ci": {"alpha": [alpha + 0.1, alpha + 0.2]}}}}
    plot_figure("parameters", runs_table(), fits, tmp_path / "p.png", tmp_path / "p.pdf")
    assert_figures(tmp_path / "p.png", tmp_path / "p.pdf")


def test_l_of_c_drawn_with_its_cells(fits_with_lc):
    runs = runs_table()
    fig = FIGURES["loss_vs_C"](runs, fits_with_lc, curves=curves_table(runs))
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "frontier" in labels and "cells fitted" in labels and any("L(C)" in t for t in labels)
    residuals = FIGURES["residuals"](runs, fits_with_lc)  # L(C) from its cells, no curves needed
    assert len(residuals.axes[3].collections) == 1
    plt.close("all")


def test_seeds_drawn_as_mean_and_spread(fits):
    draw = FIGURES["loss_vs_N"]
    two_seeds = draw(runs_table(), fits)
    one_seed = draw(runs_table(seeds=(0,)), fits)
    # One error bar set per D line when there are two seeds; none with one seed.
    assert len(two_seeds.axes[0].containers) == 3 and len(one_seed.axes[0].containers) == 0
    assert "min–max" in two_seeds.axes[0].get_title()
    plt.close("all")


def test_missing_inputs_give_a_note_not_an_error(tmp_path, fits):
    runs = runs_table()
    # No curves at all, and a path that does not exist: the curve figures say so.
    for name, curves in (("learning_curves", None), ("loss_vs_C", tmp_path / "absent.parquet")):
        fig = FIGURES[name](runs, fits, curves=curves)
        assert "not available" in fig.axes[0].texts[0].get_text()
        plt.close(fig)
    # Not an IsoFLOP grid; a fits.json with every law skipped and no compute-optimal entry.
    assert "C_budget" in FIGURES["isoflops"](runs, fits).axes[0].texts[0].get_text()
    skipped = {"experiment": "synth", "optimal_loss": None,
               "laws": {law: {"law": law, "skipped": "too few sizes"} for law in ("L(N)", "L(D)", "L(N,D)")}}
    for name in NEW_FIGURES:
        plot_figure(name, runs, skipped, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf", curves=None)
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    residuals = FIGURES["residuals"](runs, skipped)
    assert "too few sizes" in residuals.axes[0].texts[0].get_text()
    plt.close("all")


def test_isoflop_grid_profiles_and_n_opt(tmp_path):
    runs = isoflop_runs()
    fits = {"experiment": "iso", "optimal_loss": None, "laws": {}}
    profiles = FIGURES["isoflops"](runs, fits)
    assert len(profiles.axes[0].lines) == 6  # a parabola and a minimum per budget
    n_opt = FIGURES["N_opt"](runs, fits)
    assert any("bootstrap band" in t.get_text() for t in n_opt.axes[0].get_legend().get_texts())
    plt.close("all")
    # An L(N,D) fit at alpha or beta = 0 has no allocation (a, G null): the IsoFLOP line alone.
    degenerate = {**fits, "compute_optimal": {"law": "L(N,D)", "a": None, "b": None, "G": None, "ci": {}}}
    n_opt = FIGURES["N_opt"](runs, degenerate)
    assert not any("L(N,D)" in t.get_text() for t in n_opt.axes[0].get_legend().get_texts())
    plt.close("all")
    # Without a C_budget column, the budget is read from the data name (C1e+15).
    named = FIGURES["isoflops"](runs.drop(columns="C_budget"), fits)
    assert len(named.axes[0].lines) == 6
    # Two budgets with fewer than three sizes each: no minimum, the title says why.
    few = isoflop_runs()[lambda t: t["N_nonembedding"] < 1e6]
    assert "need 2" in FIGURES["isoflops"](few, fits).axes[0].get_title()
    plt.close("all")


def test_frontier_is_the_lower_envelope():
    curves, _ = load_curves(curves_table(runs_table()))  # the diverged cell's NaN losses left out
    frontier = compute_frontier(curves)
    assert np.all(np.diff(frontier["flops"]) > 0) and np.all(np.diff(frontier["eval_loss"]) < 0)
    assert frontier["eval_loss"].iloc[-1] == curves["eval_loss"].min()
    # Every point lies on or above the envelope's step (the best loss at no more FLOPs).
    steps = frontier["eval_loss"].to_numpy()[np.searchsorted(frontier["flops"], curves["flops"], "right") - 1]
    assert np.all(curves["eval_loss"].to_numpy() >= steps)


def test_same_inputs_same_bytes(tmp_path, fits_with_lc):
    runs = runs_table()
    for out in ("a", "b"):
        plot_figure("loss_vs_C", runs, fits_with_lc, tmp_path / f"{out}.png", tmp_path / f"{out}.pdf",
                    curves=curves_table(runs))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()


def test_cli_named_figures_with_curves(tmp_path, fits):
    runs_table().to_csv(tmp_path / "runs.csv", index=False)
    curves_table(runs_table()).to_parquet(tmp_path / "curves.parquet")
    (tmp_path / "fits.json").write_text(json.dumps(fits))
    out = tmp_path / "figures"
    main(["--runs", str(tmp_path / "runs.csv"), "--fits", str(tmp_path / "fits.json"),
          "--curves", str(tmp_path / "curves.parquet"),
          "--figure", "learning_curves", str(out / "lc.png"), str(out / "lc.pdf")])
    assert_figures(out / "lc.png", out / "lc.pdf")
    with pytest.raises(SystemExit):
        main(["--runs", str(tmp_path / "runs.csv"), "--fits", str(tmp_path / "fits.json"),
              "--figure", "no_such_figure", str(out / "x.png"), str(out / "x.pdf")])


def classifier_runs():
    """A samples experiment (D counts samples) whose cells report an accuracy."""
    runs = runs_table().assign(D_unit="samples")
    runs["val_accuracy"] = 1 - runs["val_loss"] / 5
    return runs


def test_accuracy_figure_frontier_and_sample_labels(tmp_path, fits):
    runs = classifier_runs()
    fig = FIGURES["accuracy_vs_C"](runs, fits)
    assert fig.axes[0].get_ylabel() == "validation accuracy"
    assert "frontier" in fig.axes[0].get_legend_handles_labels()[1]
    plt.close(fig)
    cells = pd.DataFrame({"C": [1.0, 2, 3, 4], "accuracy": [0.5, 0.7, 0.6, 0.9]})
    assert accuracy_frontier(cells)["C"].tolist() == [1.0, 2, 4]  # C=3 is beaten by the cheaper C=2
    # Without an accuracy: a note, not an error; D counts samples in every label.
    note = FIGURES["accuracy_vs_C"](runs_table(), fits)
    assert "not available" in note.axes[0].texts[0].get_text()
    by_n = FIGURES["loss_vs_N"](runs, fits)
    assert by_n.axes[0].get_legend().get_title().get_text() == "samples D"
    assert "cross-entropy" in by_n.axes[0].get_ylabel()
    assert FIGURES["loss_vs_D"](runs, fits).axes[0].get_xlabel() == "training samples D"
    curves = curves_table(runs).rename(columns={"tokens": "samples"})
    assert FIGURES["learning_curves"](runs, fits, curves=curves).axes[0].get_xlabel() == "samples seen"
    plt.close("all")
    for name in ("accuracy_vs_C", "approach1"):
        plot_figure(name, runs, fits, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf")
        assert_figures(tmp_path / f"{name}.png", tmp_path / f"{name}.pdf")


def test_approach1_figure_draws_the_envelope(tmp_path, fits):
    assert fits["laws"]["approach1"]["points_mode"] == "final"
    fig = FIGURES["approach1"](runs_table(), fits)
    assert "envelope" in fig.axes[0].get_legend_handles_labels()[1]
    assert any("C^" in t for t in fig.axes[1].get_legend_handles_labels()[1])
    plt.close(fig)
    skipped = {**fits, "laws": {"approach1": {"law": "approach1", "skipped": "experiment 'synth', law approach1: why"}}}
    assert "why" in FIGURES["approach1"](runs_table(), skipped).axes[0].texts[0].get_text()
    plt.close("all")


def test_compare_figure_and_table(tmp_path, fits):
    other_runs = classifier_runs().assign(experiment="other")
    other_runs["val_loss"] *= 1.1
    other = fit_experiment(other_runs, n_boot=5, parametric_grid=SMALL_GRID, law_names=["L(N)", "L(C)"])
    runs_table().to_csv(tmp_path / "a.csv", index=False)
    other_runs.to_csv(tmp_path / "b.csv", index=False)
    (tmp_path / "a.json").write_text(json.dumps(fits))
    (tmp_path / "b.json").write_text(json.dumps(other))
    out = tmp_path / "out"
    compare_main(["--runs", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--fits", str(tmp_path / "a.json"),
                  str(tmp_path / "b.json"), "--png", str(out / "compare.png"), "--pdf", str(out / "compare.pdf"),
                  "--csv", str(out / "compare.csv")])
    assert_figures(out / "compare.png", out / "compare.pdf")
    table = pd.read_csv(out / "compare.csv")
    assert table["experiment"].tolist() == ["synth", "other"]
    assert table.loc[0, "L(N)_alpha"] == pytest.approx(fits["laws"]["L(N)"]["params"]["alpha"])
    assert table.loc[0, "approach1_a"] == pytest.approx(fits["laws"]["approach1"]["a"])
    assert np.isnan(table.loc[1, "approach1_a"])  # not fitted for the other variant
    with pytest.raises(SystemExit, match="2 runs tables and 1 fits"):
        compare_main(["--runs", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--fits", str(tmp_path / "a.json"),
                      "--png", str(out / "x.png"), "--pdf", str(out / "x.pdf"), "--csv", str(out / "x.csv")])


def test_compare_rule_in_the_dag(tiny_config, tmp_path, run_snakemake):
    tiny_config["experiments"]["tiny2"] = copy.deepcopy(tiny_config["experiments"]["tiny"])
    tiny_config["experiments"]["tiny"]["analysis"]["compare"] = ["tiny2"]
    path = write_config(tmp_path / "c.yaml", tiny_config)
    dry = run_snakemake(tmp_path, "-n", "-p", "--configfile", str(path))
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "rule compare:" in dry.stdout and "results/tiny/compare.csv" in dry.stdout
    assert "--runs results/tiny/runs.csv results/tiny2/runs.csv" in dry.stdout
    assert "results/tiny2/compare.csv" not in dry.stdout  # tiny2 compares with nothing
    assert "--curves results/tiny/curves.parquet" in dry.stdout  # the fit reads the curves
    tiny_config["experiments"]["tiny"]["analysis"]["compare"] = ["nope"]
    bad = run_snakemake(tmp_path, "-n", "--configfile", str(write_config(path, tiny_config)))
    assert bad.returncode != 0 and "experiments.tiny.analysis.compare names 'nope'" in bad.stderr


def test_kaplan_figure_panels(fits):
    runs = runs_table()
    assert "params" in fits["laws"]["kaplan_L(N,D)"] and "L(N,S)" not in fits["laws"]  # fitted without curves
    fig = FIGURES["kaplan"](runs, fits, curves=curves_table(runs))
    assert len(fig.axes[0].collections) == 4  # one colour per N
    assert "not available" in fig.axes[1].texts[0].get_text()
    plt.close("all")
    with_ns = fit_experiment(runs, n_boot=0, law_names=["L(N,S)"], curves=curves_table(runs))
    fig = FIGURES["kaplan"](runs, {**fits, "laws": {**fits["laws"], **with_ns["laws"]}},
                                        curves=curves_table(runs))
    assert len(fig.axes[1].collections) == 4 and len(fig.axes[1].lines) == 4
    plt.close("all")
