"""Figures from the learning curves (curves.parquet): loss against tokens and against compute.

Each function takes the runs table, fits.json (dict or path) and the curves table (DataFrame,
path, or None when the experiment has none) and writes a PNG and a PDF; a missing input
gives a figure that says so rather than an error.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures.inputs import experiment_cells, fitted_cells, law_entry, load_curves
from workflow_scripts.analysis.fit.power_law import law as power_law
from workflow_scripts.analysis.law_summary import law_text


def compute_frontier(curves: pd.DataFrame) -> pd.DataFrame:
    """Lower envelope of every evaluation: the lowest loss reached with at most C FLOPs."""
    points = curves.sort_values(["flops", "eval_loss"])[["flops", "eval_loss"]]
    best = points["eval_loss"].cummin()
    return points[points["eval_loss"] <= best].drop_duplicates("flops").reset_index(drop=True)


def _lines(ax, cells: pd.DataFrame, x_col: str, lw: float, alpha: float) -> None:
    """One line per cell and seed, coloured by N; one legend entry per N."""
    colours = ps.size_colours(cells["N_nonembedding"])
    labelled = set()
    for (n, _, _), cell in cells.groupby(["N_nonembedding", "D", "seed"], sort=True):
        label = None if n in labelled else ps.human(n)
        labelled.add(n)
        ax.plot(cell[x_col], cell["eval_loss"], "-", color=colours[n], lw=lw, alpha=alpha, label=label)


def _start(name: str, fits, curves):
    """(title, usable curves, None), or a figure saying why there are no curves in place of them."""
    ps.style()
    title = f"{name} — {fits.get('experiment', '')}"
    curves, why = load_curves(curves, fits.get("experiment"))
    return title, curves, ps.note_figure(title, why) if curves is None else None


def learning_curves_figure(runs, fits, curves=None):
    """Eval loss against tokens seen, one line per model size, each at its largest D."""
    title, curves, note = _start("Learning curves", fits, curves)
    if note:
        return note
    # Smaller budgets mostly retrace the largest one's early steps (a shorter schedule):
    # one panel at each model's largest D keeps every size readable.
    largest = curves.groupby("N_nonembedding")["D"].transform("max")
    cells = curves[curves["D"] == largest]
    fig, ax = plt.subplots(figsize=ps.FIGSIZE)
    _lines(ax, cells, "tokens", lw=1.2, alpha=0.9)
    ps.optimal_loss(ax, fits)
    ax.set(xlabel=f"{ps.data_unit(runs)} seen", ylabel=ps.loss_label(runs))
    ps.log_axes(ax)
    budgets = cells["D"].unique()
    where = f"D = {ps.human(budgets[0])}" if len(budgets) == 1 else "each model's largest D"
    ax.set_title(f"{title} ({where})", fontsize="small")
    ps.legend_right(ax, "parameters N")
    return fig


def loss_vs_compute_figure(runs, fits, curves=None):
    """Every cell's curve against FLOPs, the compute-efficient frontier and the L(C) fit."""
    title, curves, note = _start("Loss vs. compute", fits, curves)
    if note:
        return note
    fig, ax = plt.subplots(figsize=ps.FIGSIZE)
    _lines(ax, curves, "flops", lw=0.7, alpha=0.55)
    frontier = compute_frontier(curves)
    ax.plot(frontier["flops"], frontier["eval_loss"], "-", color="black", lw=1.6, label="frontier")
    entry = law_entry(fits, "L(C)")
    if "params" in entry:
        # The cells' final losses it was fitted to.
        cells = fitted_cells(experiment_cells(runs, fits), entry)
        fitted = cells["C"] if not cells.empty else frontier["flops"]
        grid = np.geomspace(fitted.min(), fitted.max(), 200)  # drawn only where it was fitted
        colour = ps.categorical(4)[3]
        ax.plot(grid, power_law(entry["params"], grid), "--", color=colour, lw=1.4,
                label=ps.wrap(law_text("L(C)", entry)))
        note = ""
        if not cells.empty:
            ax.scatter(cells["C"], cells["val_loss"], s=18, color=colour, edgecolor="black", lw=0.5, zorder=3,
                       label="cells fitted")
    else:
        note = f" (L(C) {'skipped' if 'skipped' in entry else 'not fitted'})"
    ps.optimal_loss(ax, fits)
    ax.set(xlabel="training compute C (FLOPs)", ylabel=ps.loss_label(runs))
    ps.log_axes(ax)
    ax.set_title(title + note, fontsize="small")
    ps.legend_right(ax, "parameters N")
    return fig
