"""Fit scaling laws to one experiment's runs, or to any table, with bootstrap intervals.

Per experiment, the laws of ``workflow_scripts.analysis.fit.registry`` (one module per law):
L(N) = E + A·N^(−α) at the largest D, L(D) likewise at the largest N, L(C) on the
compute-efficient frontier (``workflow_scripts.analysis.fit.power_law``); Chinchilla's
L(N, D) = E + A/N^α + B/D^β over every usable cell with the compute-optimal allocation it
implies (``workflow_scripts.analysis.fit.parametric``); IsoFLOP minima on an IsoFLOP grid
(approach 2, ``workflow_scripts.analysis.fit.isoflops``); Kaplan et al. (2020)'s L(N, D)
(Eq. 1.5) and learning-curve law L(N, S) (Eq. 1.6, ``workflow_scripts.analysis.fit.kaplan``);
Chinchilla's approach 1, the lowest loss at each FLOP count
(``workflow_scripts.analysis.fit.approach1``); with the curves' noise scale, Kaplan's L(N, S_min) and
L(C_min) at the critical batch size (Eq. 5.3-5.5, ``workflow_scripts.analysis.fit.critical_batch``). What the laws share (the fit job, the
extrapolation check) is ``workflow_scripts.analysis.fit.laws``; every fitted entry carries a
verdict ``quality`` (``workflow_scripts.analysis.fit.quality``). The method is Hoffmann et al.
(2022, §3.3 and App. D.2) as replicated by Besiroglu et al. (Epoch AI, 2024): fit log L,
minimise the Huber loss (δ = 1e-3) of the log residuals summed over points with L-BFGS-B from
every start of a grid, keep the best (``workflow_scripts.analysis.fit.huber``); intervals come
from resampling cells with replacement. Run by hand or from Snakemake as::

    python -m workflow_scripts.analysis.fit.experiment --runs results/default/runs.csv \
        [--curves curves.parquet] --out fits.json
    python -m workflow_scripts.analysis.fit.experiment --table runs.csv --n N --d D --loss loss \
        [--c C] --out fits.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from workflow_scripts.analysis import bracket, sweep
from workflow_scripts.analysis.cells import exclusions, selected_rows, usable_runs
from workflow_scripts.analysis.fit import approach1
from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit import parametric
from workflow_scripts.analysis.fit import power_law
from workflow_scripts.analysis.fit import quality
from workflow_scripts.analysis.fit import registry
from workflow_scripts.analysis.fit.laws import DEFAULTS, Job
from workflow_scripts.io import atomic_write_json, provenance, read_json

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


def _check_options(job: Job) -> None:
    if job.approach1_points not in approach1.MODES:
        raise ValueError(f"approach 1 points {job.approach1_points!r}; "
                         f"expected one of {', '.join(approach1.MODES)}")
    if int(job.workers) != job.workers or job.workers < 1:
        raise ValueError(f"fit workers = {job.workers!r}; expected an integer >= 1")
    if not 0 <= job.curve_skip < 1:
        raise ValueError(f"curve skip fraction {job.curve_skip}; expected a number in [0, 1)")


def _experiment_runs(runs: pd.DataFrame, experiment: str | None) -> tuple[str, pd.DataFrame]:
    missing = [c for c in REQUIRED_COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs table lacks column(s) {', '.join(missing)}")
    names = sorted(runs["experiment"].astype(str).unique())
    if experiment is None:
        if len(names) != 1:
            raise ValueError(f"runs table holds {len(names)} experiments {names}; name one to fit")
        experiment = names[0]
    runs = runs[runs["experiment"].astype(str) == experiment]
    if runs.empty:
        raise ValueError(f"runs table has no cells of experiment {experiment!r}")
    return experiment, runs


def fit_experiment(runs: pd.DataFrame, experiment: str | None = None, curves: pd.DataFrame | None = None,
                   law_names: Sequence[str] | None = None, thresholds: Mapping[str, Any] | None = None,
                   **options) -> dict[str, Any]:
    """The content of fits.json for one experiment: every law of ``law_names`` (default: all that
    apply, ``registry.requested``) fitted to its usable cells, each with its verdict.

    ``options`` are the fields of ``laws.Job`` (n_boot, seed, level, irreducible, n_holdout,
    approach1_points, curve_skip, parametric_grid, workers), their defaults those of config/schema.yaml;
    ``curves`` (curves.parquet) feeds L(N,S) and approach 1's ``all`` points; ``thresholds``
    override the schema's ``analysis.quality``. Each fitted law but isoflop and approach1 carries
    ``extrapolation``: the law refitted without the cells at the ``n_holdout`` largest compute
    values, which it predicts. Laws that cannot be fitted are recorded as skipped with a warning
    on stderr; the others are still fitted. A poor law is one warning line on stderr.
    """
    experiment, runs = _experiment_runs(runs, experiment)
    thresholds = quality.check_thresholds(thresholds, DEFAULTS["quality"])
    if curves is not None:
        curves = selected_rows(curves[curves["experiment"].astype(str) == experiment])
    job = Job(experiment, usable_runs(runs), exclusions(runs), curves, **options)
    _check_options(job)
    laws = registry.requested(runs, law_names, curves is not None)
    fitted, sections = {}, {}
    for law in registry.LAWS.values():  # a section of a law not fitted says so
        sections.update({key: job.skipped(law.name, "not requested") for key in law.sections})
    for law in laws:
        fitted[law.name] = law.fit(job)
        sections.update({key: fitted[law.name].pop(key) for key in law.sections})
        _report(experiment, fitted[law.name])
    optimal = None
    if "optimal_loss" in runs.columns:
        values = pd.to_numeric(runs["optimal_loss"], errors="coerce").to_numpy(float)
        values = values[np.isfinite(values)]
        optimal = float(np.median(values)) if values.size else None
    quality.judge_all(fitted, sections.get("compute_optimal"), thresholds, optimal)
    for name, entry in fitted.items():
        if entry.get("quality", {}).get("verdict") == "poor":
            print(f"warning: {experiment} {name}: poor fit: {'; '.join(entry['quality']['reasons'])}",
                  file=sys.stderr)
    config = {"n_bootstrap": job.n_boot, "seed": job.seed, "ci_level": job.level, "laws": list(fitted),
              "irreducible": job.irreducible, "n_holdout": job.n_holdout,
              "approach1_points": job.approach1_points, "curve_skip": job.curve_skip,
              "huber_delta": hf.HUBER_DELTA, "grid": _grid_record(power_law.DEFAULT_GRID),
              "grid_parametric": _grid_record(parametric.DEFAULT_GRID), "quality": thresholds}
    swept = sweep.section(runs)  # a swept experiment: the settings selected, and those at the sweep's edge
    return {"format_version": FORMAT_VERSION, "experiment": experiment, "optimal_loss": optimal,
            "laws": fitted, **sections, **({"sweep": swept} if swept else {}), "provenance": provenance(config=config)}


def _grid_record(grid) -> dict[str, list[float]]:
    return {k: [float(v) for v in g] for k, g in grid.items()}


def write_fits(runs_csv, out_json, experiment: str | None = None, curves_path=None,
               bracket_records: list[str] | None = None, bracket_added: list[str] | None = None,
               bracket_rounds: int = 0, **options) -> dict[str, Any]:
    """Read runs.csv (and curves.parquet, if given), fit its experiment (``options`` as
    ``fit_experiment``'s), write fits.json atomically; with ``bracket_rounds``, its ``bracket``
    section from the round records and the model sizes they added."""
    curves = None
    if curves_path is not None:
        if not os.path.exists(curves_path):
            raise FileNotFoundError(f"curves {curves_path} not found; expected curves.parquet from aggregate")
        curves = pd.read_parquet(curves_path)
    fits = fit_experiment(pd.read_csv(runs_csv), experiment=experiment, curves=curves, **options)
    if bracket_rounds:
        fits["bracket"] = bracket.section([read_json(p) for p in bracket_records or []], bracket_added or [],
                                          bracket_rounds, fits["laws"].get("isoflop"))
    fits["provenance"]["runs"] = str(runs_csv)
    fits["provenance"]["curves"] = None if curves_path is None else str(curves_path)
    atomic_write_json(out_json, fits)
    return fits


def _print_laws(fits: dict[str, Any]) -> None:
    for name, entry in fits["laws"].items():
        print(f"{name}: skipped" if "skipped" in entry else f"{name}: {registry.LAWS[name].summary(entry)}")


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


def quality_thresholds(text: str) -> dict[str, Any]:
    """--quality: a JSON object of thresholds of ``analysis.quality`` (some or all)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--quality {text!r} is not JSON ({error.msg}); "
                                         'expected an object such as {"max_rms": 0.02}') from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--quality {text!r}; expected a JSON object of thresholds")
    return value


def _parser() -> argparse.ArgumentParser:
    d = DEFAULTS  # config/schema.yaml's analysis block: the one place the defaults live
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--runs", help="runs.csv written by workflow_scripts.analysis.aggregate")
    source.add_argument("--table", help="any CSV table: fit L(N, D) = E + A/N^alpha + B/D^beta to it")
    parser.add_argument("--n", help="--table: column of model sizes N")
    parser.add_argument("--d", help="--table: column of data sizes D (tokens)")
    parser.add_argument("--loss", help="--table: column of final losses")
    parser.add_argument("--c", help="--table: column of compute budgets C; adds the IsoFLOP fit (approach 2)")
    parser.add_argument("--out", required=True, help="where to write fits.json")
    parser.add_argument("--bootstrap", type=int, default=d["bootstrap"],
                        help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d["seed"], help="bootstrap seed (default: %(default)s)")
    parser.add_argument("--level", type=float, default=d["level"],
                        help="interval level (default: %(default)s)")
    parser.add_argument("--experiment", default=None, help="experiment to fit if runs.csv holds several")
    parser.add_argument("--laws", type=law_list, default=d["laws"],
                        help=f"--runs: comma-separated laws among {','.join(registry.LAWS)} "
                        "(default: all that apply)")
    parser.add_argument("--no-irreducible", dest="irreducible", action="store_false",
                        default=d["irreducible"],
                        help="--runs: force E = 0 in the single-variable laws L(N), L(D), L(C)")
    parser.add_argument("--holdout", type=int, default=d["holdout"],
                        help="--runs: largest compute values held out by the extrapolation check "
                        "(default: %(default)s)")
    parser.add_argument("--curves", help="--runs: curves.parquet (learning curves) for L(N,S) and "
                        "approach 1's 'all' points; without it those laws are skipped (default: none)")
    parser.add_argument("--approach1-points", choices=approach1.MODES, default=d["approach1_points"],
                        help="--runs: approach 1 from each cell's final loss across data sizes (final), "
                        "every point of the curves (all), or final when two models have two data sizes "
                        "(auto) (default: %(default)s)")
    parser.add_argument("--curve-skip", type=float, default=d["curve_skip"],
                        help="--runs: fraction of each run's steps L(N,S) leaves out "
                        "(warmup; default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for L(N,D)'s start grid and bootstrap; same numbers (default: 1)")
    parser.add_argument("--bracket-rounds", type=int, default=0,
                        help="--runs: the IsoFLOP grid's bracketing rounds at most (experiment.bracket)")
    parser.add_argument("--bracket-records", nargs="*", default=[],
                        help="--runs: the bracketing rounds' records (workflow_scripts.analysis.bracket)")
    parser.add_argument("--bracket-added", action="append", default=[],
                        help="--runs: a model size the bracketing added (repeated)")
    parser.add_argument("--quality", type=quality_thresholds, default=None,
                        help="--runs: JSON object of fit-quality thresholds (analysis.quality of "
                        f"config/schema.yaml; default: {json.dumps(d['quality'])})")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.table and not (args.n and args.d and args.loss):
        parser.error("--table needs --n, --d and --loss (column names)")
    try:
        if args.table:
            fits = parametric.write_table_fits(args.table, args.out, args.n, args.d, args.loss, args.c,
                                               args.bootstrap, args.seed, args.level)
            parametric.print_summary(fits)
            return
        fits = write_fits(args.runs, args.out, args.experiment, curves_path=args.curves, law_names=args.laws,
                          thresholds=args.quality, n_boot=args.bootstrap, seed=args.seed, level=args.level,
                          irreducible=args.irreducible, n_holdout=args.holdout,
                          approach1_points=args.approach1_points, curve_skip=args.curve_skip,
                          workers=args.workers, bracket_records=args.bracket_records,
                          bracket_added=args.bracket_added, bracket_rounds=args.bracket_rounds)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    _print_laws(fits)
    opt = fits["compute_optimal"]
    if opt.get("a") is not None:
        print(f"compute-optimal (from L(N,D)): N_opt ~ C^{opt['a']:.3f} {opt['ci']['a']}, "
              f"D_opt ~ C^{opt['b']:.3f} {opt['ci']['b']}")


if __name__ == "__main__":
    main()
