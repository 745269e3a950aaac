"""Figures from the learning curves (curves.parquet): loss against tokens and against compute.

Each function takes the runs table, fits.json (dict or path) and the curves table (DataFrame,
path, or None when the experiment has none) and writes a PNG and a PDF; a missing input
gives a figure that says so rather than an error.
"""

from __future__ import annotations

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures.draw import cells_of, usable_runs

CURVE_COLUMNS = ("model", "data", "seed", "N_nonembedding", "D", "status", "tokens", "flops", "eval_loss")


def load_curves(curves, experiment: str | None = None) -> tuple[pd.DataFrame | None, str]:
    """Usable evaluations (status ok, tokens, FLOPs and loss positive) or (None, why not)."""
    if curves is None:
        return None, "no learning curves given"
    if not isinstance(curves, pd.DataFrame):
        if not os.path.exists(curves):
            return None, f"{os.path.basename(str(curves))} not found"
        curves = pd.read_parquet(curves)
    if "tokens" not in curves.columns and "samples" in curves.columns:
        # A samples dataset's curves count samples: "tokens" below means data seen, labelled by runs' D_unit.
        curves = curves.rename(columns={"samples": "tokens"})
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        return None, f"curves lack column(s) {', '.join(missing)}"
    if experiment is not None and "experiment" in curves.columns:
        curves = curves[curves["experiment"].astype(str) == experiment]
    # Step 0 sits at zero tokens and FLOPs: off a log axis, so left out.
    keep = (curves["status"] == "ok") & (curves["tokens"] > 0) & (curves["flops"] > 0)
    loss = pd.to_numeric(curves["eval_loss"], errors="coerce")
    curves = curves[keep & np.isfinite(loss) & (loss > 0)]
    if curves.empty:
        return None, "no usable evaluation in the learning curves"
    return curves.sort_values(["N_nonembedding", "D", "seed", "tokens"]), ""


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
    entry = fits.get("laws", {}).get("L(C)", {})
    if "params" in entry:
        p, ci = entry["params"], (entry.get("ci") or {}).get("alpha")
        # The cells' final losses it was fitted to.
        cells = cells_of(usable_runs(runs, fits.get("experiment")), entry)
        fitted = cells["C"] if not cells.empty else frontier["flops"]
        grid = np.geomspace(fitted.min(), fitted.max(), 200)  # drawn only where it was fitted
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and ci[0] != ci[1] else ""
        colour = ps.categorical(4)[3]
        ax.plot(grid, p["E"] + p["A"] * grid ** -p["alpha"], "--", color=colour, lw=1.4,
                label=f"L(C): $\\alpha_C$ = {p['alpha']:.2f}{interval}")
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
