"""Figures: both formats written, and still written when a law was skipped."""

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from conftest import SMALL_GRID
from workflow_scripts.figures import main, plot_loss_vs_d, plot_loss_vs_n
from workflow_scripts.fit import fit_experiment


def runs_table(n_values=(1e4, 3e4, 1e5, 3e5), d_values=(1e5, 1e6, 1e7), seeds=(0, 1)):
    rng = np.random.default_rng(0)
    rows = [{"experiment": "synth", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": s, "status": "ok",
             "N": n, "N_nonembedding": n, "D": d, "C": 6 * n * d, "optimal_loss": 1.8,
             "val_loss": (1.8 + 80 * n ** -0.3 + 200 * d ** -0.3) * math.exp(rng.normal(0, 0.01))}
            for n in n_values for d in d_values for s in seeds]
    rows.append({**rows[0], "seed": 9, "status": "diverged", "val_loss": float("nan")})
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
    plot_loss_vs_n(runs, fits, tmp_path / "n.png", tmp_path / "n.pdf")
    plot_loss_vs_d(runs, fits, tmp_path / "d.png", tmp_path / "d.pdf")
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
    plot_loss_vs_d(runs, fits, tmp_path / "d.png", tmp_path / "d.pdf")
    assert_figures(tmp_path / "d.png", tmp_path / "d.pdf")
    # A fits.json with every law skipped and no usable cell still gives a figure.
    runs["status"] = "diverged"
    empty = {"experiment": "synth", "optimal_loss": None, "laws": {"L(N)": {"law": "L(N)", "skipped": "why"}}}
    plot_loss_vs_n(runs, empty, tmp_path / "n.png", tmp_path / "n.pdf")
    assert (tmp_path / "n.png").stat().st_size > 0


def test_cli_from_files(tmp_path, fits):
    runs_table().to_csv(tmp_path / "runs.csv", index=False)
    (tmp_path / "fits.json").write_text(json.dumps(fits))
    out = tmp_path / "figures"
    main(["--runs", str(tmp_path / "runs.csv"), "--fits", str(tmp_path / "fits.json"),
          "--loss-vs-n", str(out / "loss_vs_N.png"), str(out / "loss_vs_N.pdf"),
          "--loss-vs-d", str(out / "loss_vs_D.png"), str(out / "loss_vs_D.pdf")])
    assert_figures(out / "loss_vs_N.png", out / "loss_vs_N.pdf")
    assert_figures(out / "loss_vs_D.png", out / "loss_vs_D.pdf")
    with pytest.raises(SystemExit):
        main(["--runs", str(tmp_path / "runs.csv"), "--fits", str(tmp_path / "fits.json")])
