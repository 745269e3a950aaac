"""Shared test helpers: the repository root, the real data folder, tiny configs, running snakemake.

Imported as ``tests.helpers`` (pytest puts the repository root on sys.path); the fixtures
that use them are in tests/conftest.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import math

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TINYSHAKESPEARE = SHARED_DATA / "tinyshakespeare.txt"

# A study small enough for a test: three widths, two data sizes, seconds per cell.
TINY_CONFIG = {
    "datasets": {
        "synthetic": {
            "source": "generator",
            "hmm": {"n_states": 8, "vocab_size": 16, "seed": 1},
            "symbols": {"train": 40000, "val": 4000, "test": 4000},
        }
    },
    "tokenizers": {"char": {"kind": "char"}},
    "experiments": {
        "tiny": {
            "dataset": "synthetic",
            "tokenizer": "char",
            "model": {"context": 32},
            "models": [
                {"n_layer": 1, "d_model": 8, "n_head": 2},
                {"n_layer": 1, "d_model": 16, "n_head": 2},
                {"n_layer": 1, "d_model": 24, "n_head": 2},
            ],
            "data_sizes": [4096, 16384],
            "seeds": [0],
            "training": {"batch_size": 8, "eval_tokens": 2048, "eval_points": 4},
            "analysis": {"bootstrap": 50},
        }
    },
}

# A 243-start grid for the parametric law (the full one has 4,500): the same code path, seconds not minutes.
SMALL_GRID = {"a": (0, 5, 10), "b": (0, 5, 10), "alpha": (0, 0.5, 1), "beta": (0, 0.5, 1), "e": (-1, 0, 1)}


def snakemake_env(workdir: Path) -> dict[str, str]:
    """The environment of a snakemake run: the tests' interpreter first on PATH, so jobs use it too."""
    env = dict(os.environ, PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    env.setdefault("MPLCONFIGDIR", str(workdir / ".mplconfig"))
    return env


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``workdir`` with the interpreter running the tests."""
    env = snakemake_env(workdir)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(workdir), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def small_cell(root, **overrides):
    """A one-layer cell on ``token_files``, a second or so of training."""
    from workflow_scripts.train.cell_config import TrainConfig  # torch loads only for the tests that train

    settings = dict(train_tokens=str(root / "train.bin"), val_tokens=str(root / "val.bin"), n_layer=1, d_model=16,
                    n_head=2, context=32, tokens=8192, batch_size=8, eval_tokens=1024, eval_points=4, seed=0)
    return TrainConfig(**(settings | overrides))


# runs.csv of a synthetic study drawn from a known L(N, D) (1% noise), with one diverged cell.
def runs_table(n_values=(1e4, 3e4, 1e5, 3e5), d_values=(1e5, 1e6, 1e7), seeds=(0, 1)):
    rng = np.random.default_rng(0)
    rows = [{"experiment": "synth", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": s, "status": "ok",
             "N": n, "N_nonembedding": n, "D": d, "C": 6 * n * d, "optimal_loss": 1.8,
             "val_loss": (1.8 + 80 * n ** -0.3 + 200 * d ** -0.3) * math.exp(rng.normal(0, 0.01))}
            for n in n_values for d in d_values for s in seeds]
    rows.append({**rows[0], "seed": 9, "status": "diverged", "val_loss": float("nan")})
    return pd.DataFrame(rows)


def planned_jobs(dry_run_output: str, rule: str) -> int:
    """The count of a rule's jobs in the 'Job stats' table of a dry run."""
    counts = [line.split() for line in dry_run_output.splitlines()]
    return next(int(row[1]) for row in counts if len(row) == 2 and row[0] == rule)


TRAIN_JOB = re.compile(r"^\s*rule (train_cell|train_samples_cell|train_pack_\w+):\n(?:\s+input: .*\n)?\s+output: (.*)$",
                       re.MULTILINE)


def planned_cells(dry_run_output: str) -> list[str]:
    """The run folders a dry run plans to train, one per cell, whether alone or in a pack
    (workflow_scripts.plan.packs): each training job's ``metrics.json`` outputs."""
    return [path.removesuffix("/metrics.json") for _, outputs in TRAIN_JOB.findall(dry_run_output)
            for path in outputs.split(", ") if path.endswith("/metrics.json")]


def default_sigint() -> None:
    """A child's ``preexec_fn``: Ctrl-C handled as at a terminal. A shell that starts the suite in
    the background (``cmd &``) makes SIGINT ignored, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
