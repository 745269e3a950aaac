"""IsoFLOP grids that bracket their optimum: the sizes added round by round.

With ``bracket.rounds`` > 0, an IsoFLOP grid made by ``size_sweep`` grows after its planned
cells: round r's job (``workflow_scripts.analysis.bracket``, a Snakemake checkpoint) fits
each budget's parabola over the cells trained so far and writes which side, if any, has a
vertex outside the sizes run. The next ``sizes_per_round`` sweep sizes on that side
(``workflow_scripts.plan.grid.sweep_size`` past the sweep's ends) join the grid, at every
budget whose tokens per parameter admit them, and round r + 1 judges again - until every
vertex is bracketed or the rounds run out. A round record is a fact about trained cells, so
a rerun reads the same records and plans the same grid: nothing to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from workflow_scripts.plan.grid import sweep_size

SIDES = ("below", "above")


def round_file(experiment: str, round_number: int) -> str:
    return f"results/{experiment}/bracket/round{round_number}.json"


def enabled(exp: dict) -> bool:
    return exp["bracket"]["rounds"] > 0


def added_sizes(exp: dict, records: list[dict]) -> list[dict]:
    """The sizes rounds ``records`` (in order) add to the experiment's models, in order added."""
    sweep, per_round = exp["size_sweep"], exp["bracket"]["sizes_per_round"]
    low, high, sizes = 0, sweep["count"] - 1, []
    for record in records:
        for side in record["extend"]:
            if side not in SIDES:
                raise ValueError(f"bracket round {record.get('round')}: extend side {side!r}: expected one of "
                                 f"{list(SIDES)}")
            if side == "below":
                ks, low = range(low - 1, low - 1 - per_round, -1), low - per_round
            else:
                ks, high = range(high + 1, high + 1 + per_round), high + per_round
            for size in (sweep_size(sweep, k) for k in ks):
                # Rounding to multiple_of can repeat a size at the small end: each size once.
                if size not in sizes and size not in exp["models"]:
                    sizes.append(size)
    return sizes


def read_record(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def records_on_disk(experiment: str, exp: dict, root: str | os.PathLike = ".") -> list[dict]:
    """The round records already written, up to the first that extends nothing (or the last round)."""
    records = []
    for r in range(exp["bracket"]["rounds"] if enabled(exp) else 0):
        path = Path(root) / round_file(experiment, r)
        if not path.is_file():
            break
        records.append(read_record(path))
        if not records[-1]["extend"]:
            break
    return records
