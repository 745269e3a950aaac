"""Side-by-side comparison of variants: one experiment and the experiments its analysis compares to.

Variants share axes and are overlaid, each with its own colour and marker, because the question
a comparison asks is whether one variant's points lie below or bend away from another's, which
overlaid points on common axes answer at a glance (panels per variant would make the reader
compare positions across panels). Panels: loss against compute with each variant's
compute-efficient frontier and L(C) fit; loss against N at each variant's largest D with its
L(N) fit; accuracy against compute when any variant is a classifier. The legend carries each
variant's fitted exponents. compare.csv holds the exponents side by side: one row per
experiment, α of L(N) and L(C) and a of approach 1 (and of the L(N,D) allocation), each with its
interval and its law's verdict. Run by hand or from Snakemake as::

    python -m workflow_scripts.analysis.compare --runs a/runs.csv b/runs.csv --fits a/fits.json b/fits.json \\
        --png a/figures/compare.png --pdf a/figures/compare.pdf --csv a/compare.csv
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workflow_scripts.analysis.cells import usable_runs
from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures.allocation import accuracy_frontier, classifier_cells
from workflow_scripts.analysis.figures.inputs import law_entry
from workflow_scripts.analysis.fit import laws, power_law
from workflow_scripts.analysis.law_summary import UNKNOWN, fitted_laws, law_values, verdict
from workflow_scripts.io import atomic_path, read_json

# (column prefix, law in fits.json, value key): the exponents compared.
EXPONENTS = (("L(N)_alpha", "L(N)", "alpha"), ("L(C)_alpha", "L(C)", "alpha"),
             ("approach1_a", "approach1", "a"), ("compute_optimal_a", "compute_optimal", "a"))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LEGEND_COLUMNS = 3  # variants per row of the legend below the panels


def _value(fits: dict[str, Any], law: str, key: str) -> tuple[float, float, float, str]:
    """(value, interval low, interval high, verdict) of one exponent, NaN where the law was not fitted."""
    entry = dict(fitted_laws(fits)).get(law, {})
    ci = (entry.get("ci") or {}).get(key) or (None, None)
    numbers = tuple(np.nan if v is None else float(v) for v in (law_values(law, entry).get(key), *ci))
    return (*numbers, verdict(entry))


def exponents_table(fits_list: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per experiment: each exponent of ``EXPONENTS`` with its interval (NaN if not fitted)
    and its law's verdict."""
    rows = []
    for fits in fits_list:
        row = {"experiment": fits.get("experiment")}
        for column, law, key in EXPONENTS:
            (row[column], row[f"{column}_low"], row[f"{column}_high"],
             row[f"{column}_verdict"]) = _value(fits, law, key)
        rows.append(row)
    return pd.DataFrame(rows)


def _label(name: str, fits: dict[str, Any]) -> str:
    parts = []
    for symbol, law, key in (("α_C", "L(C)", "alpha"), ("α_N", "L(N)", "alpha"), ("a", "approach1", "a")):
        value, _, _, said = _value(fits, law, key)
        if np.isfinite(value):
            parts.append(f"{symbol} = {value:.2f}" + ("" if said == UNKNOWN else f" {said}"))
    return name + (f" ({', '.join(parts)})" if parts else "")


def _loss_vs_c(ax, runs, fits, colour, marker):
    ax.scatter(runs["C"], runs["val_loss"], s=10, color=colour, marker=marker, alpha=0.35, lw=0)
    front = laws.frontier(runs).groupby("C", as_index=False)["val_loss"].mean()
    ax.plot(front["C"], front["val_loss"], "-", marker=marker, color=colour, lw=1.3, ms=4, label=_label(
        fits.get("experiment", ""), fits))
    p = law_entry(fits, "L(C)").get("params")
    if p and len(front) > 1:
        grid = np.geomspace(front["C"].min(), front["C"].max(), 100)
        ax.plot(grid, power_law.law(p, grid), "--", color=colour, lw=1.0)


def _loss_vs_n(ax, runs, fits, colour, marker):
    cells = runs[runs["D"] == runs["D"].max()].groupby("N_nonembedding")["val_loss"].mean()
    ax.plot(cells.index, cells.to_numpy(), marker, color=colour, ms=4, label=fits.get("experiment", ""))
    p = law_entry(fits, "L(N)").get("params")
    if p and len(cells) > 1:
        grid = np.geomspace(cells.index.min(), cells.index.max(), 100)
        ax.plot(grid, power_law.law(p, grid), "--", color=colour, lw=1.0)


def compare_figure(variants: list[tuple[pd.DataFrame, dict[str, Any]]]):
    """The comparison figure of (runs, fits) pairs, the experiment itself first."""
    ps.style()
    usable = [(usable_runs(runs, fits.get("experiment")), fits) for runs, fits in variants]
    accuracy = [classifier_cells(runs, fits.get("experiment")) for runs, fits in variants]
    with_accuracy = any(not a.empty for a in accuracy)
    fig, axes = plt.subplots(1, 3 if with_accuracy else 2, figsize=(12.0 if with_accuracy else 8.5, 3.8))
    colours = ps.categorical(len(variants))
    for i, ((runs, fits), acc) in enumerate(zip(usable, accuracy)):
        colour, marker = colours[i], MARKERS[i % len(MARKERS)]
        if runs.empty:
            continue
        _loss_vs_c(axes[0], runs, fits, colour, marker)
        _loss_vs_n(axes[1], runs, fits, colour, marker)
        if with_accuracy and not acc.empty:
            axes[2].scatter(acc["C"], acc["accuracy"], s=10, color=colour, marker=marker, alpha=0.35, lw=0)
            front = accuracy_frontier(acc)
            axes[2].plot(front["C"], front["accuracy"], "-", marker=marker, color=colour, lw=1.3, ms=4,
                         label=fits.get("experiment", ""))
    first = usable[0][0]
    axes[0].set(xlabel="training compute C (FLOPs)", ylabel=ps.loss_label(first),
                title="loss vs. compute (line: frontier, dashed: L(C))")
    axes[1].set(xlabel="non-embedding parameters N", ylabel=ps.loss_label(first),
                title="loss vs. N at each variant's largest D (dashed: L(N))")
    for ax in axes[:2]:
        ps.log_axes(ax)
        ax.title.set_fontsize("small")
    if with_accuracy:
        axes[2].set(xlabel="training compute C (FLOPs)", ylabel="validation accuracy", xscale="log",
                    title="accuracy vs. compute (line: frontier)")
        ps.log_axes(axes[2], loss_y=False)
        axes[2].title.set_fontsize("small")
    # Below the panels: each variant's entry carries its exponents and verdicts, too long to sit
    # inside an axes without covering its points.
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize="x-small", loc="lower center",
                   ncol=min(len(handles), LEGEND_COLUMNS), frameon=False)
    fig.suptitle(f"Variants compared — {variants[0][1].get('experiment', '')}", fontsize="medium")
    rows = -(-len(handles) // LEGEND_COLUMNS)  # ceil: legend rows to keep clear of the panels
    fig.tight_layout(rect=(0, 0.06 * rows, 1, 1))
    return fig


def write_comparison(runs_paths, fits_paths, out_png, out_pdf, out_csv) -> pd.DataFrame:
    """Read each variant's runs.csv and fits.json (the experiment first); write the figure and the table."""
    if len(runs_paths) != len(fits_paths) or not runs_paths:
        raise ValueError(f"got {len(runs_paths)} runs tables and {len(fits_paths)} fits files; "
                         "expected one of each per variant, at least one")
    variants = [(pd.read_csv(r), read_json(f)) for r, f in zip(runs_paths, fits_paths)]
    table = exponents_table([fits for _, fits in variants])
    with plt.rc_context():
        ps.save(compare_figure(variants), out_png, out_pdf)
    with atomic_path(out_csv, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True,
                        help="runs.csv of each variant, the experiment first")
    parser.add_argument("--fits", nargs="+", required=True,
                        help="fits.json of each variant, in the same order")
    parser.add_argument("--png", required=True, help="where to write the figure as PNG")
    parser.add_argument("--pdf", required=True, help="where to write the figure as PDF")
    parser.add_argument("--csv", required=True, help="where to write the exponents side by side")
    args = parser.parse_args(argv)
    try:
        table = write_comparison(args.runs, args.fits, args.png, args.pdf, args.csv)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{len(table)} variants -> {args.png}, {args.pdf}, {args.csv}")


if __name__ == "__main__":
    main()
