"""The figures CLI: each figure of the catalog by name, drawn from runs.csv, fits.json and curves.parquet.

The catalog, figures.yaml beside this module, is the one list of an experiment's figures: this CLI
draws its names, ``workflow_scripts.plan.figures`` reads it to ask the DAG for the figures that apply
to an experiment (and their report captions, rules/report/<caption>). The figures themselves are in
``workflow_scripts.analysis.figures.sizes`` (loss vs. N and D), ``.curves`` (learning curves, loss vs.
compute), ``.fits`` (residuals, parameters, IsoFLOP, N_opt, Kaplan), ``.critical_batch`` (Kaplan's B_crit, S_min
and C_min), ``.tuning`` (a sweep's U-curves and optimal learning rates) and ``.allocation`` (approach 1,
accuracy), with what they read in ``.inputs`` and their look in ``.style``. Run by hand or from
Snakemake as::

    python -m workflow_scripts.analysis.figures --runs runs.csv --fits fits.json --curves curves.parquet \\
        --figure loss_vs_N loss_vs_N.png loss_vs_N.pdf --figure loss_vs_C loss_vs_C.png loss_vs_C.pdf
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import yaml

from workflow_scripts.analysis.figures import allocation, sizes
from workflow_scripts.analysis.figures import critical_batch
from workflow_scripts.analysis.figures import curves as curve_figures
from workflow_scripts.analysis.figures import fits as fit_figures
from workflow_scripts.analysis.figures import style as ps
from workflow_scripts.analysis.figures import tuning
from workflow_scripts.analysis.figures.inputs import load

CATALOG = Path(__file__).with_name("figures.yaml")
# Every figure by name → function(runs, fits, curves=None) returning the figure.
FIGURES = {
    "loss_vs_N": sizes.loss_vs_n_figure, "loss_vs_D": sizes.loss_vs_d_figure,
    "learning_curves": curve_figures.learning_curves_figure, "loss_vs_C": curve_figures.loss_vs_compute_figure,
    "isoflops": fit_figures.isoflops_figure, "N_opt": fit_figures.n_opt_figure,
    "residuals": fit_figures.residuals_figure,
    "parameters": fit_figures.parameters_figure, "approach1": allocation.approach1_figure,
    "accuracy_vs_C": allocation.accuracy_vs_compute_figure, "kaplan": fit_figures.kaplan_figure,
    "critical_batch": critical_batch.critical_batch_figure, "tuning": tuning.tuning_figure,
}


def catalog_names() -> list[str]:
    """The figure names of the catalog, in its order."""
    return list(yaml.safe_load(CATALOG.read_text()))


def plot_figure(name, runs, fits, out_png, out_pdf, curves=None) -> None:
    """Draw the figure ``name`` as PNG and PDF.

    A missing input (a skipped law, no curves) gives a figure that says "not available: <why>"
    where the plot would be, never an error; the DAG asks only for the figures that apply.
    """
    runs, fits = load(runs, fits)
    with plt.rc_context():  # the style stays inside this figure
        ps.save(FIGURES[name](runs, fits, curves=curves), out_png, out_pdf)


def main(argv: list[str] | None = None) -> None:
    names = catalog_names()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, help="runs.csv written by workflow_scripts.analysis.aggregate")
    parser.add_argument("--fits", required=True, help="fits.json written by workflow_scripts.analysis.fit.experiment")
    parser.add_argument("--curves", help="curves.parquet (learning curves); if absent, those figures say so")
    parser.add_argument("--figure", nargs=3, action="append", required=True, metavar=("NAME", "PNG", "PDF"),
                        help=f"a figure by name, one of {', '.join(names)}; repeatable")
    args = parser.parse_args(argv)
    unknown = [name for name, *_ in args.figure if name not in names]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; expected one of {', '.join(names)}")
    try:
        runs, fits = load(args.runs, args.fits)
        for name, png, pdf in args.figure:
            plot_figure(name, runs, fits, png, pdf, curves=args.curves)
            print(f"wrote {png} ({os.path.getsize(png)} bytes), {pdf}")
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
