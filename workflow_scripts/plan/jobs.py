"""The training jobs of a validated config, each job's values computed once.

Snakemake evaluates a rule's input, params and resources functions for every job (and
some of them several times while it builds and schedules the DAG), so the rules
(``rules/common.smk``) look a job's values up here. A job is named by its key: a cell's
``(experiment, model, data, seed)`` or a WSD stable phase's ``(experiment, model, seed)``.
"""

from __future__ import annotations

import copy
from typing import Any

from workflow_scripts.plan import bracket
from workflow_scripts.plan.flags import cell_flags, job_flags, pack_command, stable_phase_flags
from workflow_scripts.plan.grid import Cell, branch_groups, expand_grid, model_name, trains_on_samples
from workflow_scripts.plan.inputs import branch_folder, run_file, samples_files, token_files
from workflow_scripts.plan.packs import Pack, plan_packs
from workflow_scripts.plan.resources import train_group, train_resources


class TrainJobs:
    """The cells of ``config`` (``workflow_scripts.plan.grid.expand_grid``), their stable phases,
    and what each job reads, is started with and asks the scheduler for."""

    def __init__(self, config: dict) -> None:
        self.config = copy.deepcopy(config)  # grows by the sizes bracketing adds; config stays as planned
        self._plan()
        # Rules are made once, from the grid as planned (bracketed grids have no packs).
        self.packs = plan_packs(self.config, list(self.cells.values()))

    def _plan(self) -> None:
        self.cells = {cell.key: cell for cell in expand_grid(self.config)}
        # WSD cells that start their cooldown from a stable phase shared by their (model, seed).
        self.branches = branch_groups(self.config, list(self.cells.values()))
        self._flags: dict[tuple, str] = {}
        self._resources: dict[tuple, dict[str, Any]] = {}

    def add_sizes(self, experiment: str, sizes: list[dict]) -> None:
        """Add model sizes to an experiment (an IsoFLOP grid bracketing its optimum) and replan."""
        models = self.config["experiments"][experiment]["models"]
        new = [size for size in sizes if size not in models]
        if new:
            models.extend(new)
            self._plan()

    def experiment_cells(self, experiment: str) -> list[Cell]:
        return [cell for cell in self.cells.values() if cell.experiment == experiment]

    def bracketed_cells(self, experiment: str, exp: dict, records: list[dict]) -> list[Cell]:
        """The cells of ``exp`` (as planned) and of the sizes its bracketing rounds ``records`` added."""
        added = bracket.added_sizes(exp, records)
        self.add_sizes(experiment, added)
        names = {model_name(size, exp["model"]["family"]) for size in exp["models"] + added}
        return [c for c in self.experiment_cells(experiment) if c.model in names]

    def round_adds_cells(self, experiment: str, exp: dict, records: list[dict]) -> bool:
        """Whether the last of ``records`` adds a cell: if no budget admits the sizes it asks for,
        the next round would judge the same cells again, so the rounds end there."""
        before = self.bracketed_cells(experiment, exp, records[:-1])
        return len(self.bracketed_cells(experiment, exp, records)) > len(before)

    def cell(self, key: tuple) -> Cell:
        """A cell, or for a stable phase the largest cell of its branch group (whose run it is)."""
        return self.cells[key] if len(key) == 4 else self.branches[key][-1]

    def branched(self, cell: Cell) -> bool:
        return cell.branch_key in self.branches

    def inputs(self, key: tuple) -> dict[str, str] | list[str]:
        """Token files (a branched cell also its stable phase's folder), or an mlp or cnn cell's samples."""
        cell = self.cell(key)
        exp = self.config["experiments"][cell.experiment]
        if cell.on_samples:
            return samples_files(exp)
        files = token_files(exp)
        if len(key) == 4 and self.branched(cell):
            files["branches"] = branch_folder(cell)
        return files

    def flags(self, key: tuple) -> str:
        """The cell flags of the job (``workflow_scripts.plan.flags``)."""
        if key not in self._flags:
            if len(key) == 4:
                cell = self.cells[key]
                self._flags[key] = cell_flags(self.config, cell, self.branched(cell))
            else:
                self._flags[key] = stable_phase_flags(self.config, self.branches[key])
        return self._flags[key]

    def resources(self, key: tuple, attempt: int) -> dict[str, Any]:
        """Scheduler resources (``workflow_scripts.plan.resources.train_resources``); a stable phase
        asks for what its largest cell would."""
        if (key, attempt) not in self._resources:
            self._resources[key, attempt] = train_resources(self.config, self.cell(key), attempt)
        return self._resources[key, attempt]

    def group(self, key: tuple) -> str | None:
        """The cell's group (``workflow_scripts.plan.resources.train_group``); a stable phase runs alone."""
        return train_group(self.config, self.cells[key]) if len(key) == 4 else None

    def pack_inputs(self, pack: Pack) -> list[str]:
        """The files its cells read: the same for every cell, since no packed cell branches."""
        exp = self.config["experiments"][pack.experiment]
        files = samples_files(exp) if trains_on_samples(exp) else token_files(exp)
        return files if isinstance(files, list) else list(files.values())

    def pack_cells(self, pack: Pack, seed: str) -> list[Cell]:
        return [self.cells[key] for key in pack.keys(seed)]

    def pack_flags(self, pack: Pack, seed: str) -> str:
        """The cells' flags, one line each: a change in any re-runs the pack."""
        return "\n".join(self.flags(key) for key in pack.keys(seed))

    def pack_command(self, pack: Pack, seed: str, threads: int) -> str:
        """``python -m workflow_scripts.train.pack`` with each cell's log, benchmark file and command line."""
        exp = self.config["experiments"][pack.experiment]
        commands = []
        for cell in self.pack_cells(pack, seed):
            output = {name: run_file(cell, f"{name}.{ext}") for name, ext in (("metrics", "json"), ("curve", "csv"))}
            commands.append(f"{self.flags(cell.key)} {job_flags(exp, threads, 0, self.inputs(cell.key), output)}")
        logs = [p.format(seed=seed) for p in pack.patterns("logs/train", ".log")]
        benchmarks = [p.format(seed=seed) for p in pack.patterns("benchmarks/train", ".tsv")]
        return pack_command(exp, commands, logs, benchmarks)

    def pack_resources(self, pack: Pack, seed: str, attempt: int) -> dict[str, Any]:
        """The most memory of its cells, the sum of their times."""
        each = [self.resources(key, attempt) for key in pack.keys(seed)]
        return {**each[0], "mem_mb": max(r["mem_mb"] for r in each), "runtime": sum(r["runtime"] for r in each)}
