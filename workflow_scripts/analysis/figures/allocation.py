"""Figures of compute allocation and of classifiers: Chinchilla's approach 1 and accuracy against compute.

Same contract as ``workflow_scripts.analysis.figures.curves``: (runs, fits, curves) in, a figure out, and a panel that
says "not available: <why>" where a law was skipped or an input is missing.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import usable_runs
from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures.inputs import curves_table, experiment_cells, law_entry
from workflow_scripts.analysis.fit import approach1
from workflow_scripts.analysis.law_summary import interval_text, verdict_note


def accuracy_frontier(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells (seed means, columns C and accuracy) that no cheaper cell beats in accuracy, by C.

    The accuracy counterpart of ``workflow_scripts.analysis.fit.laws.frontier``: higher is better, so a cell is on it when its
    accuracy exceeds the best of every cell of lower compute.
    """
    cells = cells.sort_values(["C", "accuracy"], ascending=[True, False], kind="stable")
    best_before = np.maximum.accumulate(np.r_[-np.inf, cells["accuracy"].to_numpy()[:-1]])
    return cells[cells["accuracy"].to_numpy() > best_before]


def classifier_cells(runs: pd.DataFrame, experiment: str | None) -> pd.DataFrame:
    """Usable cells with a validation accuracy, averaged over seeds: N, D, C, accuracy (empty if none)."""
    runs = usable_runs(runs, experiment)
    if "val_accuracy" not in runs.columns:
        return pd.DataFrame(columns=["N_nonembedding", "D", "C", "accuracy"])
    runs = runs.assign(accuracy=pd.to_numeric(runs["val_accuracy"], errors="coerce"))
    runs = runs.dropna(subset=["accuracy"])
    return runs.groupby(["N_nonembedding", "D"], as_index=False).agg(C=("C", "mean"),
                                                                     accuracy=("accuracy", "mean"))


def accuracy_vs_compute_figure(runs, fits, curves=None):
    """Final validation accuracy of every cell against its compute, and the compute-efficient frontier."""
    ps.style()
    title = f"Accuracy vs. compute — {fits.get('experiment', '')}"
    cells = classifier_cells(runs, fits.get("experiment"))
    if cells.empty:
        return ps.note_figure(title, "no validation accuracy in runs.csv (not a classification experiment)")
    fig, ax = plt.subplots(figsize=ps.FIGSIZE)
    for n, colour in ps.size_colours(cells["N_nonembedding"]).items():
        part = cells[cells["N_nonembedding"] == n].sort_values("C")
        ax.plot(part["C"], part["accuracy"], "-o", color=colour, lw=0.9, ms=3, alpha=0.8, label=ps.human(n))
    front = accuracy_frontier(cells)
    ax.plot(front["C"], front["accuracy"], "-", color="black", lw=1.6, label="frontier")
    ax.set(xlabel="training compute C (FLOPs)", ylabel="validation accuracy", xscale="log")
    ps.log_axes(ax, loss_y=False)
    ax.set_title(title, fontsize="small")
    ps.legend_right(ax, "parameters N")
    return fig


def approach1_figure(runs, fits, curves=None):
    """Left: each model's loss against FLOPs and their lower envelope; right: N_opt(C) and its power law."""
    ps.style()
    title = f"Approach 1: lowest loss per FLOP — {fits.get('experiment', '')}"
    entry = law_entry(fits, "approach1")
    if "a" not in entry:
        return ps.note_figure(title, entry.get("skipped", "approach1 is not in fits.json"))
    runs = experiment_cells(runs, fits)
    try:
        points, mode = approach1.traces(runs, curves_table(curves), entry.get("points_mode", "final"))
    except ValueError as why:
        return ps.note_figure(title, str(why))
    env = pd.DataFrame(entry["points"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    colours = ps.size_colours(points["N"])
    labelled = set()
    for _, trace in points.groupby("trace", sort=True):
        n = trace["N"].iloc[0]
        trace = trace.sort_values("C")
        left.plot(trace["C"], trace["loss"], "-o" if mode == "final" else "-", color=colours[n], lw=0.9,
                  ms=2.5, alpha=0.8, label=None if n in labelled else ps.human(n))
        labelled.add(n)
    left.plot(env["C"], env["loss"], "-", color="black", lw=1.8, label="envelope")
    ps.optimal_loss(left, fits)
    left.set(xlabel="training compute C (FLOPs)", ylabel=ps.loss_label(runs))
    ps.log_axes(left)
    what = "final losses across data sizes" if mode == "final" else "every point of the curves"
    left.set_title(f"{what}", fontsize="small")
    ps.legend_right(left, "parameters N")
    grid = np.geomspace(env["C"].min(), env["C"].max(), 100)
    right.plot(env["C"], env["N_opt"], ".", color=ps.categorical(1)[0], ms=3, label="envelope's N")
    interval = interval_text((entry.get("ci") or {}).get("a"))
    right.plot(grid, entry["k_N"] * grid ** entry["a"], "--", color="black", lw=1.2,
               label=f"$N_{{opt}} \\propto C^{{{entry['a']:.3g}}}${interval}")
    right.set(xlabel="training compute C (FLOPs)", ylabel="compute-optimal N (non-embedding)", yscale="log")
    ps.log_axes(right, loss_y=False)
    right.yaxis.set_major_formatter(ps.mticker.FuncFormatter(lambda v, _: ps.human(v)))
    right.legend(fontsize="x-small", loc="upper left")
    fig.suptitle(ps.wrap(title + verdict_note(entry), 110), fontsize="small")
    fig.tight_layout()
    return fig
