"""Speed of building the DAG: ``snakemake -n`` of a 10,000-cell grid against a trivial workflow.

The grid is the default study (config/config.yaml) with its models, data sizes and seeds
multiplied to ``--cells`` training cells; the peer, measured in the same run, is a Snakefile
of as many jobs that each touch one file (one output, nothing else). Both are dry runs
(``-n --forceall``, printing every job as a user sees it, into a pipe) in temporary folders,
so no output of either exists; the time is the whole ``snakemake`` process, start to exit,
the best of ``--repeats`` runs.

    python benchmarks/dag_speed.py [--cells 10000] [--repeats 1]
"""

from __future__ import annotations

import argparse
import copy
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# Token budgets of the grid: multiples of one batch (16 × 64 tokens) within the 1.1M-symbol split.
BATCH_TOKENS = 16 * 64

# The peer: as many jobs, each one output and a shell command, nothing else to evaluate.
TRIVIAL = """\
rule all:
    input:
        expand("out/{{i}}.txt", i=range({jobs})),


rule job:
    output:
        "out/{{i}}.txt",
    shell:
        "touch {{output}}"
"""


def grid_config(cells: int) -> dict:
    """The default study with ``cells`` cells: its 9 sizes, 10 data sizes, and seeds to fill the rest."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    exp = copy.deepcopy(config["experiments"]["synthetic"])
    exp["data_sizes"] = [BATCH_TOKENS * 64 * (k + 1) for k in range(10)]
    per_seed = len(exp["models"]) * len(exp["data_sizes"])
    exp["seeds"] = list(range(-(-cells // per_seed)))
    config["experiments"] = {"synthetic": exp}
    return config


def dry_run(snakefile: Path, workdir: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one ``snakemake -n`` in ``workdir``; fails loudly if it fails.

    CPU time is printed beside wall time because a shared machine stretches the wall time of both
    runs by whatever else runs at that moment, and their ratio with it.
    """
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
               "-n", "--forceall", "--cores", "2", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(cells: int, repeats: int = 1) -> dict:
    """Both dry runs side by side, best of ``repeats``: the grid's and the trivial workflow's wall and CPU."""
    with tempfile.TemporaryDirectory(prefix="dag_speed.") as tmp:
        root = Path(tmp)
        (root / "grid").mkdir()
        config = grid_config(cells)
        exp = config["experiments"]["synthetic"]
        n_cells = len(exp["models"]) * len(exp["data_sizes"]) * len(exp["seeds"])
        (root / "grid.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (root / "trivial").mkdir()
        trivial_snakefile = root / "trivial" / "Snakefile"
        trivial_snakefile.write_text(TRIVIAL.format(jobs=n_cells))
        grid = [dry_run(REPO / "Snakefile", root / "grid", "--configfile", str(root / "grid.yaml"))
                for _ in range(repeats)]
        trivial = [dry_run(trivial_snakefile, root / "trivial") for _ in range(repeats)]
    (grid_wall, grid_cpu), (trivial_wall, trivial_cpu) = (
        (min(w for w, _ in runs), min(c for _, c in runs)) for runs in (grid, trivial))
    return {"cells": n_cells, "repeats": repeats, "grid_wall_s": grid_wall, "grid_cpu_s": grid_cpu,
            "trivial_wall_s": trivial_wall, "trivial_cpu_s": trivial_cpu,
            "ratio_wall": grid_wall / trivial_wall, "ratio_cpu": grid_cpu / trivial_cpu}


def report(r: dict) -> list[str]:
    """The lines ``main`` prints for a ``measure`` result."""
    return [
        f"dag_speed: snakemake -n --forceall, best of {r['repeats']} (wall, CPU user + system)",
        f"  this workflow, {r['cells']:,} cells: {r['grid_wall_s']:.1f} s wall, {r['grid_cpu_s']:.1f} s CPU",
        f"  trivial workflow, {r['cells']:,} jobs: {r['trivial_wall_s']:.1f} s wall, "
        f"{r['trivial_cpu_s']:.1f} s CPU",
        f"  ratio: {r['ratio_wall']:.2f}x wall, {r['ratio_cpu']:.2f}x CPU (target: at most 3x)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=10_000, help="training cells of the grid")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; the best is kept")
    args = parser.parse_args()
    print("\n".join(report(measure(args.cells, args.repeats))))


if __name__ == "__main__":
    main()
