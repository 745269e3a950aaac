"""Figures of one experiment: loss against N and against D, with the fitted laws; the CLI.

Each figure is drawn from runs.csv, fits.json and (for the learning-curve figures,
``figures_curves``) curves.parquet, and written as PNG and PDF; the fit diagnostics are in
``figures_fits``, the shared look in ``plot_style``.
Run by hand or from Snakemake as::

    python -m workflow_scripts.analysis.figures.draw --runs runs.csv --fits fits.json --curves curves.parquet \\
        --loss-vs-n loss_vs_N.png loss_vs_N.pdf --figure loss_vs_C loss_vs_C.png loss_vs_C.pdf
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.io import read_json

def usable_runs(runs: pd.DataFrame, experiment: str | None) -> pd.DataFrame:
    """Cells the fits could use: status ok and a finite positive loss."""
    if experiment is not None and "experiment" in runs.columns:
        runs = runs[runs["experiment"].astype(str) == experiment]
    loss = pd.to_numeric(runs["val_loss"], errors="coerce")
    keep = (runs["status"] == "ok") & np.isfinite(loss) & (loss > 0)
    runs = runs[keep].copy()
    runs["val_loss"] = loss[keep].astype(float)
    return runs


def cells_of(runs: pd.DataFrame, entry: dict[str, Any]) -> pd.DataFrame:
    """The rows of runs a fits.json entry lists in cells_used ("model/data/seed")."""
    ids = runs["model"].astype(str) + "/" + runs["data"].astype(str) + "/" + runs["seed"].astype(str)
    return runs[ids.isin(entry.get("cells_used") or [])]


def _fit_label(entry: dict[str, Any], symbol: str) -> str:
    p, ci = entry["params"], (entry.get("ci") or {}).get("alpha")
    # A zero-width interval means every usable resample was the data again (too few x).
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] != ci[1] else " [no interval]"
    return f"fit: $\\alpha_{symbol}$ = {p['alpha']:.2f}{interval}, E = {p['E']:.3g}"


def _plot(runs, fits, law: str, x_col: str, hue_col: str, x_label: str, hue_label: str, title: str):
    """Loss against x_col on log axes: a line per hue_col value through the seed means.

    With more than one seed, a bar spans the seeds' lowest to highest loss at each point
    (min–max rather than a standard deviation: there are rarely more than three seeds).
    """
    ps.style()
    fig, ax = plt.subplots(figsize=ps.FIGSIZE)
    runs = usable_runs(runs, fits.get("experiment"))
    for hue, colour in ps.size_colours(runs[hue_col]).items():
        stats = (runs[runs[hue_col] == hue].groupby(x_col)["val_loss"]
                 .agg(["mean", "min", "max", "count"]).sort_index())
        x = stats.index.to_numpy(float)
        ax.plot(x, stats["mean"], "-o", color=colour, lw=1.4, ms=3, label=ps.human(hue))
        many = stats["count"].to_numpy() > 1
        if many.any():
            spread = np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]])[:, many]
            ax.errorbar(x[many], stats["mean"][many], yerr=spread, fmt="none", ecolor=colour,
                        elinewidth=1.0, capsize=2)
    entry = fits.get("laws", {}).get(law, {})
    notes = []
    if "params" in entry and not runs.empty:
        x = runs[x_col].to_numpy(float)
        grid = np.geomspace(x.min(), x.max(), 200)
        p = entry["params"]
        ax.plot(grid, p["E"] + p["A"] * grid ** -p["alpha"], "--", color="black", lw=1.2,
                label=_fit_label(entry, law[2]))
    elif "params" not in entry:
        notes.append(f"{law} fit skipped")
    ps.optimal_loss(ax, fits)
    if runs.empty:
        notes.append("no usable cells")
    unit = ps.data_unit(runs)
    ax.set(xlabel=x_label.format(unit=unit), ylabel=ps.loss_label(runs))
    ps.log_axes(ax)
    seeds = int(runs.groupby([x_col, hue_col]).size().max()) if not runs.empty else 0
    if seeds > 1:
        notes.append(f"bars: min–max over ≤{seeds} seeds")
    ax.set_title(f"{title} — {fits.get('experiment', '')}" + (f" ({'; '.join(notes)})" if notes else ""),
                 fontsize="small")
    ps.legend_right(ax, hue_label.format(unit=unit))
    return fig


def _load(runs, fits) -> tuple[pd.DataFrame, dict]:
    runs = runs if isinstance(runs, pd.DataFrame) else pd.read_csv(runs)
    fits = fits if isinstance(fits, dict) else read_json(fits)
    missing = [c for c in ("status", "val_loss", "N_nonembedding", "D") if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}")
    return runs, fits


# Per figure: the law drawn, x column, hue column, x label, hue label, title.
FIGURES = {
    "loss_vs_N": ("L(N)", "N_nonembedding", "D", "non-embedding parameters N", "{unit} D",
                  "Loss vs. model size"),
    "loss_vs_D": ("L(D)", "D", "N_nonembedding", "training {unit} D", "parameters N", "Loss vs. data"),
}


def _figure_functions() -> dict:
    """Every figure by name → function(runs, fits, curves) returning the figure."""
    # Imported here: those modules use usable_runs from this one.
    from workflow_scripts.analysis.figures import allocation as fa
    from workflow_scripts.analysis.figures import curves as fc
    from workflow_scripts.analysis.figures import fits as ff

    def law_figure(name):
        return lambda runs, fits, curves=None: _plot(runs, fits, *FIGURES[name])

    return {"loss_vs_N": law_figure("loss_vs_N"), "loss_vs_D": law_figure("loss_vs_D"),
            "learning_curves": fc.learning_curves_figure, "loss_vs_C": fc.loss_vs_compute_figure,
            "isoflops": ff.isoflops_figure, "N_opt": ff.n_opt_figure,
            "residuals": ff.residuals_figure, "parameters": ff.parameters_figure,
            "approach1": fa.approach1_figure, "accuracy_vs_C": fa.accuracy_vs_compute_figure,
            "kaplan": ff.kaplan_figure}


def plot_figure(name, runs, fits, out_png, out_pdf, curves=None) -> None:
    """Draw the figure ``name`` (see ``_figure_functions``) as PNG and PDF.

    A missing input (a skipped law, no curves, not an IsoFLOP grid) gives a figure that says
    "not available: <why>" where the plot would be, never an error.
    """
    runs, fits = _load(runs, fits)
    draw = _figure_functions()[name]
    with plt.rc_context():  # the style stays inside this figure
        ps.save(draw(runs, fits, curves=curves), out_png, out_pdf)


def plot_loss_vs_n(runs, fits, out_png, out_pdf) -> None:
    """Loss against non-embedding parameters, a line per token budget D, with the L(N) fit."""
    plot_figure("loss_vs_N", runs, fits, out_png, out_pdf)


def plot_loss_vs_d(runs, fits, out_png, out_pdf) -> None:
    """Loss against training tokens, a line per model size N, with the L(D) fit."""
    plot_figure("loss_vs_D", runs, fits, out_png, out_pdf)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="runs.csv written by workflow_scripts.analysis.aggregate")
    parser.add_argument("--fits", required=True, help="fits.json written by workflow_scripts.analysis.fit.experiment")
    parser.add_argument("--curves", help="curves.parquet (learning curves); if absent, those figures say so")
    parser.add_argument("--loss-vs-n", nargs=2, metavar=("PNG", "PDF"), help="loss against N")
    parser.add_argument("--loss-vs-d", nargs=2, metavar=("PNG", "PDF"), help="loss against D")
    parser.add_argument("--figure", nargs=3, action="append", default=[], metavar=("NAME", "PNG", "PDF"),
                        help=f"any figure by name: {', '.join(_figure_functions())}; repeatable")
    args = parser.parse_args(argv)
    wanted = [("loss_vs_N", *args.loss_vs_n)] if args.loss_vs_n else []
    wanted += [("loss_vs_D", *args.loss_vs_d)] if args.loss_vs_d else []
    wanted += [tuple(f) for f in args.figure]
    if not wanted:
        parser.error("ask for at least one figure (--loss-vs-n, --loss-vs-d or --figure)")
    unknown = [name for name, *_ in wanted if name not in _figure_functions()]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(_figure_functions())}")
    try:
        runs, fits = _load(args.runs, args.fits)
        for name, png, pdf in wanted:
            plot_figure(name, runs, fits, png, pdf, curves=args.curves)
            print(f"wrote {png} ({os.path.getsize(png)} bytes), {pdf}")
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
