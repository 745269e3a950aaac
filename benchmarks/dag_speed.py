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


def dry_run(snakefile: Path, workdir: Path, *args: str) -> float:
    """Seconds of one ``snakemake -n`` in ``workdir``; fails loudly if snakemake does."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
               "-n", "--forceall", "--cores", "2", *args]
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=10_000, help="training cells of the grid")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each; the best is kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dag_speed.") as tmp:
        root = Path(tmp)
        (root / "grid").mkdir()
        config = grid_config(args.cells)
        exp = config["experiments"]["synthetic"]
        n_cells = len(exp["models"]) * len(exp["data_sizes"]) * len(exp["seeds"])
        (root / "grid.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (root / "trivial").mkdir()
        trivial = root / "trivial" / "Snakefile"
        trivial.write_text(TRIVIAL.format(jobs=n_cells))
        grid_s = min(dry_run(REPO / "Snakefile", root / "grid", "--configfile", str(root / "grid.yaml"))
                     for _ in range(args.repeats))
        trivial_s = min(dry_run(trivial, root / "trivial") for _ in range(args.repeats))
    print(f"dag_speed: snakemake -n --forceall, best of {args.repeats}")
    print(f"  this workflow, {n_cells:,} cells: {grid_s:.1f} s")
    print(f"  trivial workflow, {n_cells:,} jobs: {trivial_s:.1f} s")
    print(f"  ratio: {grid_s / trivial_s:.2f}x (target: at most 3x)")


if __name__ == "__main__":
    main()
