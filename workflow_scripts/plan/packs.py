"""Packs: an experiment's small CPU cells trained one after another in one job (issue 16).

A tiny cell trains in less time than a process takes to start and import torch, so its
job would be mostly fixed cost. A pack is one job for a chunk of an experiment's
(model, data) cells at one seed (and sweep setting): rules/train.smk makes one rule per
chunk, whose outputs are its cells' usual files (``runs/<model>/<data>/{seed}/metrics.json``
…) and which Snakemake prefers to the one-cell rules (``ruleorder``); its job runs
workflow_scripts.train.pack. Every (model, data) has a cell at each seed and setting, so a
chunk's job always finds all its cells in the grid.

A cell is small under ``resources.SMALL_CELL_FLOPS``; chunks are filled with small cells,
cheapest first, up to ``PACK_FLOPS`` or ``PACK_CELLS``. A chunk of one cell is no pack: it keeps its one-cell job,
as do the cells above the threshold, GPU cells (a pack would hold its GPU through every
cell), WSD cells that branch from a stable phase, and the sizes an IsoFLOP grid's bracketing
adds (the rules are made from the grid as planned).
Plain arithmetic, no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workflow_scripts.plan.grid import Cell
from workflow_scripts.plan.resources import SMALL_CELL_FLOPS, cell_flops

# A pack's training FLOPs bound, twice what one small cell may train: its fixed cost (process,
# import torch: about 2 s) is then a small part of it; and its most cells (a Snakemake rule
# each pack, two outputs per cell).
PACK_FLOPS = 2 * SMALL_CELL_FLOPS
PACK_CELLS = 16


@dataclass(frozen=True)
class Pack:
    """A chunk of an experiment's (model, data) cells, trained in one job for each of its seeds."""

    experiment: str
    index: int
    cells: tuple[tuple[str, str], ...]  # (model, data) wildcards

    @property
    def rule(self) -> str:  # e.g. "train_pack_sine_N_0"
        return f"train_pack_{re.sub(r'[^A-Za-z0-9_]', '_', self.experiment)}_{self.index}"

    def patterns(self, folder: str, name: str) -> list[str]:
        """Each cell's file ``<folder>/<model>/<data>/{seed}<name>``, the seed (and a sweep's setting)
        left as a wildcard: ``patterns("logs/train", ".log")`` are rule train_cell's logs."""
        return [f"results/{self.experiment}/{folder}/{model}/{data}/{{seed}}{name}" for model, data in self.cells]

    def run_files(self, name: str) -> list[str]:
        """Each cell's ``runs/<model>/<data>/{seed}/<name>``: ``run_files("metrics.json")`` are rule
        train_cell's outputs. (No "/metrics.json" in rules/train.smk: the linter takes it for absolute.)"""
        return self.patterns("runs", f"/{name}")

    @property
    def job_log(self) -> str:  # the pack's own output: which cell it is at, and a failure's last line
        return f"results/{self.experiment}/logs/train/packs/{self.index}/{{seed}}.log"

    @property
    def job_benchmark(self) -> str:  # the job's own benchmark (not under benchmarks/train: no cell's)
        return f"results/{self.experiment}/benchmarks/packs/{self.index}/{{seed}}.tsv"

    def keys(self, seed: str) -> list[tuple[str, str, str, str]]:
        return [(self.experiment, model, data, seed) for model, data in self.cells]


def packable(exp: dict) -> bool:
    """Whether the experiment's small cells may be packed (the module's docstring says which may not)."""
    training = exp["training"]
    return (exp["resources"]["pack"] and not exp["resources"]["gpu"]
            and not (training["schedule"] == "wsd" and training["branch"]))


def plan_packs(config: dict, cells: list[Cell]) -> list[Pack]:
    """The packs of every experiment, in a stable order."""
    packs = []
    for experiment, exp in config["experiments"].items():
        if not packable(exp):
            continue
        costs: dict[tuple[str, str], float] = {}  # each small (model, data), in the grid's order
        for cell in cells:
            if cell.experiment == experiment and (flops := cell_flops(config, cell)) < SMALL_CELL_FLOPS:
                costs[cell.model, cell.data] = max(costs.get((cell.model, cell.data), 0.0), flops)
        chunks, total = [[]], 0.0
        for pair, cost in sorted(costs.items(), key=lambda item: item[1]):  # stable: the grid's order in a tie
            if chunks[-1] and (total + cost > PACK_FLOPS or len(chunks[-1]) == PACK_CELLS):
                chunks.append([])
                total = 0.0
            chunks[-1].append(pair)
            total += cost
        packs += [Pack(experiment, index, tuple(chunk))
                  for index, chunk in enumerate(c for c in chunks if len(c) > 1)]
    return packs
