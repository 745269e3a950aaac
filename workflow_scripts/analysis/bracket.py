"""One round of an IsoFLOP grid's bracketing (``workflow_scripts.plan.bracket``): where each
budget's optimum lies against the sizes trained so far, and which sides need more sizes.

    python -m workflow_scripts.analysis.bracket --experiment E --round R --out round<R>.json metrics.json...
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import pandas as pd

from workflow_scripts.analysis import sweep
from workflow_scripts.analysis.fit import isoflops
from workflow_scripts.io import atomic_write_json, provenance, read_json

FORMAT_VERSION = 1


def round_record(experiment: str, round_number: int, metrics_paths: list[str]) -> dict[str, Any]:
    """The record of one round: every budget's vertex and side, and the sides to extend."""
    cells = [read_json(path) for path in metrics_paths]
    usable = [m for m in _selected(cells) if m.get("status") == "ok" and m.get("C_budget")]
    if not usable:
        raise ValueError(f"bracket round {round_number} of {experiment}: no usable IsoFLOP cell among "
                         f"{len(cells)}; expected cells of experiment.compute_budgets with status ok")
    budgets = isoflops.vertex_sides([m["N_nonembedding"] for m in usable], [m["C_budget"] for m in usable],
                                    [m["val_loss"] for m in usable])
    extend = [side for side in ("below", "above") if any(b["side"] == side for b in budgets)]
    return {"format_version": FORMAT_VERSION, "experiment": experiment, "round": round_number,
            "n_cells": len(cells), "n_usable": len(usable), "budgets": budgets, "extend": extend,
            "provenance": provenance(config={"metrics": list(metrics_paths)})}


def _selected(cells: list[dict]) -> list[dict]:
    """The cells of a swept grid's selected settings (``workflow_scripts.analysis.sweep.select``, per
    (model, budget)): a parabola through every setting's loss would mix tuned and untuned points."""
    table = pd.DataFrame(cells)
    if not sweep.swept(table):
        return cells
    chosen = sweep.select(table)["selected"].to_numpy()
    return [cell for cell, keep in zip(cells, chosen) if keep]


def section(records: list[dict], added_models: list[str], rounds: int,
            isoflop: dict[str, Any] | None) -> dict[str, Any]:
    """fits.json's ``bracket``: the rounds run, the sizes they added, and whether every vertex of
    the final fit is bracketed - or a limit was reached first: the rounds ran out, or a round asked
    for sizes no budget admits (tokens per parameter, the corpus), which ends the rounds early."""
    outside = [b["C"] for b in (isoflop or {}).get("budgets", []) if not b["minimum_inside_range"]]
    asked = bool(records) and bool(records[-1]["extend"])
    ended = "bracketed" if not asked else "rounds_limit" if len(records) >= rounds else "no_cell_admitted"
    return {"rounds_limit": rounds, "rounds_run": len(records), "added_models": list(added_models),
            "rounds": [{k: r[k] for k in ("round", "budgets", "extend")} for r in records],
            "vertices_outside": outside, "ended": ended, "limit_reached": bool(outside) and asked}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--round", type=int, required=True)
    parser.add_argument("--out", required=True, help="the round's record (JSON)")
    parser.add_argument("metrics", nargs="+", help="metrics.json of every cell trained so far")
    args = parser.parse_args(argv)
    try:
        record = round_record(args.experiment, args.round, args.metrics)
    except (ValueError, FileNotFoundError, KeyError) as error:
        sys.exit(f"error: {error}")
    atomic_write_json(args.out, record)
    for b in record["budgets"]:
        print(f"C = {b['C']:.3g}: vertex {b['N_opt'] if b['N_opt'] is None else round(b['N_opt'])} over "
              f"N in [{b['N_min']:.0f}, {b['N_max']:.0f}]: {b['side']}")
    print(f"extend: {', '.join(record['extend']) or 'nothing (every vertex bracketed)'}")


if __name__ == "__main__":
    main()
