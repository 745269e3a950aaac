"""Fit scaling laws to one experiment's runs, or to any table, with bootstrap intervals.

Per experiment (``laws.LAWS``): L(N) = E + A·N^(−α) at the largest D, L(D) likewise at the
largest N, L(C) on the compute-efficient frontier (``workflow_scripts.analysis.fit.power_law``); Chinchilla's
L(N, D) = E + A/N^α + B/D^β over every usable cell with the compute-optimal allocation it implies
(``workflow_scripts.analysis.fit.parametric``); IsoFLOP minima on an IsoFLOP grid (approach 2); Kaplan et al.
(2020)'s L(N, D) (Eq. 1.5) and learning-curve law L(N, S) (Eq. 1.6, ``workflow_scripts.analysis.fit.kaplan``);
Chinchilla's approach 1, the lowest loss at each FLOP count (``workflow_scripts.analysis.fit.approach1``).
Which cells each law uses, and the extrapolation check, are ``workflow_scripts.analysis.fit.laws``; the
entries of the final-loss laws ``workflow_scripts.analysis.fit.fit_laws``. The method is Hoffmann et al.
(2022, §3.3 and App. D.2) as replicated by Besiroglu et al. (Epoch AI, 2024): fit log L, minimise
the Huber loss (δ = 1e-3) of the log residuals summed over points with L-BFGS-B from every start
of a grid, keep the best (``workflow_scripts.analysis.fit.huber``); intervals come from resampling cells
with replacement. Run by hand or from Snakemake as::

    python -m workflow_scripts.analysis.fit.experiment --runs results/default/runs.csv [--curves curves.parquet] --out fits.json
    python -m workflow_scripts.analysis.fit.experiment --table runs.csv --n N --d D --loss loss [--c C] --out fits.json
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import numpy as np
import pandas as pd

from workflow_scripts.analysis.fit import approach1
from workflow_scripts.analysis.fit import fit_laws
from workflow_scripts.analysis.fit import kaplan
from workflow_scripts.analysis.fit import laws
from workflow_scripts.analysis.fit import parametric
from workflow_scripts.io import atomic_write_json, provenance
# Re-exported: the single-variable fit was defined here before the split (tests, notebooks).
from workflow_scripts.analysis.fit.power_law import (  # noqa: F401
    DEFAULT_GRID, HUBER_DELTA, _objective, bootstrap_power_law, fit_power_law,
)

FORMAT_VERSION = 1
REQUIRED_COLUMNS = ("experiment", "model", "data", "seed", "status", "N_nonembedding", "D", "C", "val_loss")


def _report(experiment: str, entry: dict[str, Any]) -> None:
    """A skipped law or a fit's warnings, one line each on stderr."""
    if "skipped" in entry:
        print(f"warning: {entry['skipped']}; skipped", file=sys.stderr)
    check = entry.get("extrapolation", {})
    extra = [f"extrapolation check {check['skipped']}"] if "skipped" in check else []
    for message in entry.get("warnings", []) + extra:
        print(f"warning: experiment {experiment!r}, law {entry['law']}: {message}", file=sys.stderr)


def fit_experiment(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                   experiment: str | None = None, parametric_grid: dict[str, Sequence[float]] | None = None,
                   law_names: Sequence[str] | None = None, irreducible: bool = True,
                   n_holdout: int = 1, curves: pd.DataFrame | None = None, approach1_points: str = "auto",
                   curve_skip: float = 0.1) -> dict[str, Any]:
    """The content of fits.json for one experiment: L(N) at the largest D, L(D) at the largest N,
    L(C) on the compute-efficient frontier, L(N,D) over every usable cell with the compute-optimal
    allocation it implies, on an IsoFLOP grid the IsoFLOP minima, Kaplan's L(N,D) and, with the
    learning ``curves`` (curves.parquet), L(N,S); approach 1 from the final losses across data
    sizes or the curves (``approach1_points``: auto, final, all) (``laws.LAWS``).

    ``law_names`` picks the laws (default: all that apply); ``irreducible=False`` forces E = 0
    in the single-variable laws. Each fitted law but isoflop carries ``extrapolation``: the law
    refitted without the cells at the ``n_holdout`` largest compute values, which it predicts.
    Laws that cannot be fitted (too few distinct x; for L(N,D) fewer than 2 distinct N, 2
    distinct D or 5 cells) are recorded as skipped with a warning on stderr; the others are
    still fitted. ``parametric_grid`` replaces L(N,D)'s initialisation grid (tests);
    ``curve_skip`` is the fraction of each run's steps L(N,S) leaves out (warmup).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}")
    if approach1_points not in approach1.MODES:
        raise ValueError(f"approach 1 points {approach1_points!r}; "
                         f"expected one of {', '.join(approach1.MODES)}")
    if not 0 <= curve_skip < 1:
        raise ValueError(f"curve skip fraction {curve_skip}; expected a number in [0, 1)")
    names = sorted(runs["experiment"].astype(str).unique())
    if experiment is None:
        if len(names) != 1:
            raise ValueError(f"runs table holds {len(names)} experiments {names}; name one to fit")
        experiment = names[0]
    runs = runs[runs["experiment"].astype(str) == experiment]
    if runs.empty:
        raise ValueError(f"runs table has no cells of experiment {experiment!r}")
    excluded = laws.exclusions(runs)
    bad = {e["cell"] for e in excluded}
    usable = runs[[laws.cell_id(r) not in bad for _, r in runs.iterrows()]].copy()
    usable["val_loss"] = usable["val_loss"].astype(float)
    fitted = {}
    compute_optimal = {"law": "L(N,D)", "skipped": f"experiment {experiment!r}: law L(N,D) not requested"}
    if curves is not None:
        curves = curves[curves["experiment"].astype(str) == experiment]
    common = (usable, excluded, experiment, n_boot, seed, level)
    for law in laws.requested(runs, law_names, curves is not None):
        if law in laws.SINGLE:
            fitted[law] = fit_laws.single_law(law, *common, irreducible, n_holdout)
        elif law == "L(N,D)":
            fitted[law], compute_optimal = fit_laws.parametric_law(*common, parametric_grid, n_holdout)
        elif law == "kaplan_L(N,D)":
            fitted[law] = kaplan.nd_entry(*common, n_holdout)
        elif law == "L(N,S)":
            fitted[law] = kaplan.ns_entry(usable, curves, *common[1:], curve_skip)
        elif law == "approach1":
            fitted[law] = approach1.entry(usable, curves, *common[1:], approach1_points)
        else:
            fitted[law] = laws.isoflop_entry(*common)
        _report(experiment, fitted[law])
    optimal = None
    if "optimal_loss" in runs.columns:
        values = pd.to_numeric(runs["optimal_loss"], errors="coerce").to_numpy(float)
        values = values[np.isfinite(values)]
        optimal = float(np.median(values)) if values.size else None
    return {
        "format_version": FORMAT_VERSION,
        "experiment": experiment,
        "optimal_loss": optimal,
        "laws": fitted,
        "compute_optimal": compute_optimal,
        "provenance": provenance(config={"n_bootstrap": n_boot, "seed": seed, "ci_level": level,
                                         "laws": list(fitted), "irreducible": irreducible,
                                         "n_holdout": n_holdout, "approach1_points": approach1_points,
                                         "curve_skip": curve_skip,
                                         "huber_delta": HUBER_DELTA,
                                         "grid": _grid_record(DEFAULT_GRID),
                                         "grid_parametric": _grid_record(parametric.DEFAULT_GRID)}),
    }


def _grid_record(grid) -> dict[str, list[float]]:
    return {k: [float(v) for v in g] for k, g in grid.items()}


def write_fits(runs_csv, out_json, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
               experiment: str | None = None, curves_path=None, **options) -> dict[str, Any]:
    """Read runs.csv (and curves.parquet, if given), fit its experiment (``options`` as
    ``fit_experiment``'s), write fits.json atomically."""
    curves = None
    if curves_path is not None:
        if not os.path.exists(curves_path):
            raise FileNotFoundError(f"curves {curves_path} not found; expected curves.parquet from aggregate")
        curves = pd.read_parquet(curves_path)
    fits = fit_experiment(pd.read_csv(runs_csv), n_boot=n_boot, seed=seed, level=level, experiment=experiment,
                          curves=curves, **options)
    fits["provenance"]["runs"] = str(runs_csv)
    fits["provenance"]["curves"] = None if curves_path is None else str(curves_path)
    atomic_write_json(out_json, fits)
    return fits


def _print_laws(fits: dict[str, Any]) -> None:
    for law, entry in fits["laws"].items():
        if "skipped" in entry:
            print(f"{law}: skipped")
            continue
        if law in ("isoflop", "approach1"):
            print(f"{law}: N_opt ~ C^{entry['a']:.3f} {entry['ci'].get('a')}, D_opt ~ C^{entry['b']:.3f}")
            continue
        p, level, n_cells = entry["params"], entry["ci_level"], len(entry["cells_used"])
        if law in (kaplan.ND_LAW, kaplan.NS_LAW):
            print(f"{law}: " + " ".join(f"{k}={v:.4g}" for k, v in p.items())
                  + f" {level:.0%} CI alpha_N {entry['ci'].get('alpha_N')} ({n_cells} cells)")
        elif law == "L(N,D)":
            print(f"{law}: {parametric.describe(p, entry['ci'], level)} ({n_cells} cells)")
        else:
            print(f"{law}: E={p['E']:.4g} A={p['A']:.4g} alpha={p['alpha']:.4f} "
                  f"{level:.0%} CI {entry['ci']['alpha']} ({n_cells} cells)")


def law_list(text: str) -> list[str]:
    """Comma-separated law names; commas inside parentheses belong to a name: "L(N),L(N,D)"."""
    names, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += char
    return [name.strip() for name in [*names, current] if name.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", help="runs.csv written by workflow_scripts.analysis.aggregate")
    source.add_argument("--table", help="any CSV table: fit L(N, D) = E + A/N^alpha + B/D^beta to it")
    parser.add_argument("--n", help="--table: column of model sizes N")
    parser.add_argument("--d", help="--table: column of data sizes D (tokens)")
    parser.add_argument("--loss", help="--table: column of final losses")
    parser.add_argument("--c", help="--table: column of compute budgets C; adds the IsoFLOP fit (approach 2)")
    parser.add_argument("--out", required=True, help="where to write fits.json")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--level", type=float, default=0.95, help="interval level (default: 0.95)")
    parser.add_argument("--experiment", default=None, help="experiment to fit if runs.csv holds several")
    parser.add_argument("--laws", type=law_list, default=None,
                        help=f"--runs: comma-separated laws among {','.join(laws.LAWS)} (default: all that apply)")
    parser.add_argument("--no-irreducible", dest="irreducible", action="store_false",
                        help="--runs: force E = 0 in the single-variable laws L(N), L(D), L(C)")
    parser.add_argument("--holdout", type=int, default=1,
                        help="--runs: largest compute values held out by the extrapolation check (default: 1)")
    parser.add_argument("--curves", help="--runs: curves.parquet (learning curves) for L(N,S) and "
                        "approach 1's 'all' points; without it those laws are skipped (default: none)")
    parser.add_argument("--approach1-points", choices=approach1.MODES, default="auto",
                        help="--runs: approach 1 from each cell's final loss across data sizes (final), "
                        "every point of the curves (all), or final when two models have two data sizes "
                        "(auto, default)")
    parser.add_argument("--curve-skip", type=float, default=0.1,
                        help="--runs: fraction of each run's steps L(N,S) leaves out (warmup; default: 0.1)")
    args = parser.parse_args(argv)
    if args.table and not (args.n and args.d and args.loss):
        parser.error("--table needs --n, --d and --loss (column names)")
    try:
        if args.table:
            fits = parametric.write_table_fits(args.table, args.out, args.n, args.d, args.loss, args.c,
                                               args.bootstrap, args.seed, args.level)
            parametric.print_summary(fits)
            return
        fits = write_fits(args.runs, args.out, args.bootstrap, args.seed, args.level, args.experiment,
                          curves_path=args.curves, law_names=args.laws, irreducible=args.irreducible,
                          n_holdout=args.holdout, approach1_points=args.approach1_points,
                          curve_skip=args.curve_skip)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    _print_laws(fits)
    opt = fits["compute_optimal"]
    if opt.get("a") is not None:
        print(f"compute-optimal (from L(N,D)): N_opt ~ C^{opt['a']:.3f} {opt['ci']['a']}, "
              f"D_opt ~ C^{opt['b']:.3f} {opt['ci']['b']}")


if __name__ == "__main__":
    main()
