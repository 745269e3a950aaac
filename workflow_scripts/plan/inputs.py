"""The files each job reads and writes, named from the config alone (no torch, no data read).

Paths are self-describing (``results/data/<dataset>/<tokenizer>/<split>.bin``,
``results/<experiment>/branches/<model>/<seed>``); the rules (``rules/*.smk``) and the data
stage (``workflow_scripts.data``) take them from here, so a path is spelled once.
"""

from __future__ import annotations

import glob
import os
import re
import urllib.parse
from pathlib import Path

from workflow_scripts.plan.grid import Cell

SPLITS = ("train", "val", "test")
DOWNLOAD_DIR = Path("resources/downloads")
# The digest prefix in the file name keeps two URLs with the same basename apart
# and lets the Snakemake rule find the URL from the path alone.
PREFIX_CHARS = 16
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_sha256(url: str, sha256: str) -> None:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValueError(f"download {url}: sha256 = {sha256!r}: expected 64 lowercase hex digits")


def download_name(url: str, sha256: str) -> str:
    """``<sha256 prefix>-<url basename>``, the basename reduced to safe characters."""
    check_sha256(url, sha256)
    base = os.path.basename(urllib.parse.urlparse(url).path)
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".") or "download"
    return f"{sha256[:PREFIX_CHARS]}-{base}"


def download_path(url: str, sha256: str, folder: str | os.PathLike = DOWNLOAD_DIR) -> Path:
    return Path(folder) / download_name(url, sha256)


def local_input_files(spec: dict) -> list[str]:
    """The files a ``source: local`` dataset of a validated config reads (Snakemake inputs of its
    preparation); a pattern matching no file is kept as is, so the workflow reports it missing."""
    if spec["source"] != "local":
        return []
    path = spec["path"]
    files: list[str] = []
    for pattern in [path] if isinstance(path, str) else path:
        matches = sorted(m for m in glob.glob(pattern) if os.path.isfile(m))
        files += matches or [pattern]
    return files


def token_files(exp: dict) -> dict[str, str]:
    """Token files (and their metas) of an experiment's splits, and of its transfer set if it has one."""
    folder = f"results/data/{exp['dataset']}/{exp['tokenizer']}"
    files = {
        f"{split}{suffix}": f"{folder}/{split}.{ext}"
        for split in SPLITS
        for suffix, ext in (("", "bin"), ("_meta", "json"))
    }
    if exp["transfer"]:
        files["transfer"] = f"{folder}/transfer/{exp['transfer']}.bin"
        files["transfer_meta"] = f"{folder}/transfer/{exp['transfer']}.json"
    return files


def samples_folder(exp: dict) -> str:
    """The samples folder of an mlp or cnn experiment's dataset (rule prepare_samples)."""
    return f"results/data/{exp['dataset']}/samples"


def samples_files(exp: dict) -> list[str]:
    folder = samples_folder(exp)
    return [f"{folder}/{split}.{ext}" for split in SPLITS for ext in ("x.npy", "y.npy", "json")]


def run_file(cell: Cell, name: str) -> str:
    """A file of the cell's run folder (rule train_cell's outputs: metrics.json, curve.csv)."""
    return f"results/{cell.experiment}/runs/{cell.model}/{cell.data}/{cell.seed_name}/{name}"


def branch_folder(cell: Cell) -> str:
    """Where the stable phase of the cell's (model, seed) keeps its branch checkpoints."""
    return f"results/{cell.experiment}/branches/{cell.model}/{cell.seed_name}"


def branch_checkpoint(folder: str | os.PathLike, data_size: int) -> str:
    """The branch checkpoint in a stable phase's ``folder`` that a cell of D = ``data_size`` starts from."""
    return f"{folder}/{data_size}.pt"
