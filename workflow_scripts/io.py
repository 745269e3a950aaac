"""Atomic file writes and provenance records shared by every stage.

Every output is written to a temporary file in the destination folder and
moved into place with ``os.replace``, so a crash never leaves a half-written
file under a final name (readers see the old file or the new one).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import yaml

# Packages whose versions decide the numbers a run produces.
TRACKED_PACKAGES = (
    "torch",
    "numpy",
    "tokenizers",
    "datasets",
    "pandas",
    "scipy",
    "seaborn",
    "matplotlib",
    "snakemake",
)


# The attribute atomic_path gives an error raised while writing: the destination's path.
WRITING = "atomic_write_destination"

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block is done, then deliver it: a KeyboardInterrupt between
    creating a temporary file and noting its name would leave the file behind."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it runs them
        return
    held: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(signal.SIGINT, held[0])
        elif held and previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    ``suffix`` keeps an extension for writers that infer the format from it.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _ctrl_c_deferred():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
            tmp_path = Path(tmp)
        os.close(fd)
        # mkstemp creates owner-only files; outputs get the usual mode, e.g. for other users on a cluster.
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as error:
        # Writers often fail without naming the file (a full disk mid-write): workflow_scripts.jobs reads this.
        if not hasattr(error, WRITING):
            setattr(error, WRITING, os.fspath(path))
        raise
    finally:
        with _ctrl_c_deferred():
            if tmp_path is not None and tmp_path.exists():
                tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """Rows as CSV text with exactly ``columns``; a missing or None value is written empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars and paths appear in metrics; store them as plain JSON.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def read_json(path: str | os.PathLike) -> Any:
    """The file's JSON; a corrupt or truncated file is a ValueError naming it (json's own error does not)."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
            raise ValueError(f"{os.fspath(path)}: not valid JSON ({error}): the file is corrupt or truncated; "
                             "delete it to have it made again") from None


def git_revision(repo_dir: str | os.PathLike | None = None) -> str | None:
    """The checked-out commit (with ``-dirty`` if the tree has changes), or None outside git."""
    cwd = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def provenance(config: Any = None, **extra: Any) -> dict[str, Any]:
    """What produced an output: resolved config, package versions, git revision, machine."""
    record = {
        "config": config,
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": git_revision(),
    }
    record.update(extra)
    return record


SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def schema_defaults(pointer: str, path: str | os.PathLike = SCHEMA_PATH) -> dict[str, Any]:
    """The defaults of the object schema at ``pointer`` ("/"-separated keys) in config/schema.yaml.

    Filled as validation fills them (``workflow_scripts.plan.config.validate_config``): each
    property's default, and inside an object property the defaults of its own properties, so
    code run outside Snakemake (the fit CLI's ``--table`` mode, tests) reads the one place
    defaults live instead of repeating them.
    """
    with open(path, encoding="utf-8") as f:
        node = yaml.safe_load(f)
    for key in pointer.strip("/").split("/"):
        node = node[key]
    return _defaults_of(node)


def _defaults_of(schema: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, sub in schema.get("properties", {}).items():
        if "default" in sub:
            value = sub["default"]
            values[name] = {**_defaults_of(sub), **value} if isinstance(value, dict) else value
    return values
