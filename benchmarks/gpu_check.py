"""The project's CUDA path, checked in one command on one GPU (issue 14); every part skips without one.

    python benchmarks/gpu_check.py OUT                 # every part on CUDA, ≈ 5-8 minutes on one H200
    python benchmarks/gpu_check.py OUT --parts b,c     # some parts (letters or names)
    python benchmarks/gpu_check.py OUT --device cpu    # smoke mode: tiny sizes on the CPU, the same logic
    python benchmarks/gpu_check.py --wheels snakemake  # the pip download of what the device image lacks
    make gpu-check OUT=folder

Parts (sizes in benchmarks/gpu_check.yaml; benchmarks/gpu_check_cells.py and gpu_check_speed.py):

a. study       the default study shrunk to six cells, end to end through Snakemake on CUDA (bf16),
               beside the same study on the CPU in fp32: every metric finite, provenance cuda/bf16,
               each cell's final validation loss within a stated relative tolerance of its fp32 twin;
b. throughput  a GPT-2-small step (124M parameters, context 1024, vocabulary 50257) in bf16: tokens/s and
               MFU against the dense bf16 matmul peak measured in the same run, eager and compiled, beside
               Hugging Face's GPT2LMHeadModel of the same shape and weights (targets: MFU ≥ 45% compiled,
               ratio ≥ 1.0);
c. overhead    a small cell (d 128): step time with token_cell's per-step sync, without it, and replayed as
               one CUDA graph, against the time its FLOPs take at the peak;
d. resume      a CUDA cell killed with SIGKILL between checkpoints, run again: resumed or not, and
               its final loss against two uninterrupted runs (bitwise where those two agree bitwise),
               with torch's default kernels and again under torch.use_deterministic_algorithms;
e. slots       two one-cell studies at once, each ``snakemake --resources gpu=1``, sharing the GPU slot
               locks: their training never overlaps on the one device.

It writes ``gpu_check.json`` and ``gpu_check.md`` into OUT after every part (so a run cut short by a
timeout still leaves what it measured) and each part's files under OUT/<letter>_<name>/. A part that
cannot run says ``skipped: <reason>``; the exit status is 1 when a part's check failed or it crashed.
The device machine has no network and its own python and torch: run there with its ``python3``; parts
a and e need Snakemake, carried as wheels (``--wheels snakemake`` prints the command that makes them).
Only a few files come back from the device's $OUT, so write the parts elsewhere and bring the summaries
and the logs, e.g. (one ``run`` call, carry ``.whl``, timeout_s 600)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site; timeout -s INT 570 python3 benchmarks/gpu_check.py /tmp/gc; \
      cp /tmp/gc/gpu_check.* $OUT/; tar czf $OUT/logs.tgz -C /tmp/gc --exclude='*.bin' --exclude='*.pt' .
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # the sibling modules, and this checkout's workflow_scripts

import yaml  # noqa: E402

import gpu_check_cells as cells  # noqa: E402
import gpu_check_env as probe  # noqa: E402
import gpu_check_speed as speed  # noqa: E402
from workflow_scripts.io import atomic_write_json, atomic_write_text  # noqa: E402

SETTINGS = HERE / "gpu_check.yaml"
PARTS = {"a": "study", "b": "throughput", "c": "overhead", "d": "resume", "e": "slots"}
NEEDS_SNAKEMAKE = {"a", "e"}


def part_settings(all_settings: dict, name: str, device: str) -> dict:
    """A part's sizes; under --device cpu its ``smoke`` keys replace their namesakes (the study keeps them
    apart: its smoke keys are not its own keys' names)."""
    settings = dict(all_settings["parts"][name])
    smoke = settings.get("smoke", {})
    if device == "cpu" and name != "study":
        settings.update(smoke)
    return settings


def run_part(letter: str, device: str, folder: Path, all_settings: dict) -> dict:
    """Run one part; its record: status ok, failed (a check false, or an error) or skipped, and its numbers."""
    name = PARTS[letter]
    settings = part_settings(all_settings, name, device)
    study = all_settings["study"]
    calls = {
        "study": lambda: cells.study(device, folder, study, settings),
        "throughput": lambda: speed.throughput(device, settings),
        "overhead": lambda: speed.overhead(device, settings),
        "resume": lambda: cells.resume(device, folder, settings),
        "slots": lambda: cells.slots(device, folder, study, settings),
    }
    shutil.rmtree(folder, ignore_errors=True)  # a part's own folder: a rerun starts from nothing
    folder.mkdir(parents=True)
    started = time.perf_counter()
    try:
        result = calls[name]()
    except Exception as error:
        return {"name": name, "status": "failed", "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc().splitlines()[-8:], "seconds": time.perf_counter() - started}
    failed = [check for check, ok in result.get("checks", {}).items() if not ok]
    status = "failed" if failed else "ok"
    return {"name": name, "status": status, **({"failed_checks": failed} if failed else {}), **result,
            "seconds": time.perf_counter() - started}


def skip_reason(letter: str, device: str, env: dict) -> str | None:
    if device == "cuda" and (reason := probe.cuda_reason(env)):
        return reason
    if letter in NEEDS_SNAKEMAKE:
        return probe.snakemake_reason()
    return None


def parse_parts(text: str) -> list[str]:
    """``a,c`` or ``study,overhead`` → ["a", "c"]; an unknown name is an error naming the known ones."""
    by_name = {v: k for k, v in PARTS.items()}
    letters = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        letter = item if item in PARTS else by_name.get(item)
        if letter is None:
            raise argparse.ArgumentTypeError(
                f"part {item!r}: expected letters or names of "
                + ", ".join(f"{k} ({v})" for k, v in PARTS.items()))
        letters.append(letter)
    return letters


def markdown(summary: dict) -> str:
    """The summary as a page: environment, one line per part, then each part's numbers."""
    env = summary["environment"]
    lines = [f"# GPU check ({summary['device']} mode), {summary['started']}", "",
             f"{env.get('gpu') or 'no GPU'}; torch {env['torch']} (CUDA {env['cuda_build']}), python "
             f"{env['python']}, {env['cpus']} CPUs; snakemake {env['snakemake']}, "
             f"transformers {env['transformers']}",
             "", "| part | status | seconds |", "| --- | --- | --- |"]
    for letter, part in summary["parts"].items():
        status = f"skipped: {part['skipped']}" if part["status"] == "skipped" else part["status"]
        lines.append(f"| {letter}. {part['name']} | {status} | {part.get('seconds', 0):.1f} |")
    for letter, part in summary["parts"].items():
        if part["status"] == "skipped":
            continue
        lines += ["", f"## {letter}. {part['name']}: {part['status']}", ""]
        for key, value in part.items():
            if key in ("name", "status"):
                continue
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                lines += ["", *table(value), ""]
            else:
                lines.append(f"- {key}: {fmt(value)}")
    return "\n".join(lines) + "\n"


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value)


def table(rows: list[dict]) -> list[str]:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return [f"| {' | '.join(columns)} |", f"|{' --- |' * len(columns)}",
            *(f"| {' | '.join(fmt(row.get(c, '')) for c in columns)} |" for row in rows)]


def write_summary(folder: Path, summary: dict) -> None:
    atomic_write_json(folder / "gpu_check.json", summary)
    atomic_write_text(folder / "gpu_check.md", markdown(summary))


def load_settings(path: Path, letters: list[str], parser: argparse.ArgumentParser) -> dict:
    """The settings file, checked for a section per asked part (and the study) before anything runs."""
    try:
        settings = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        parser.error(f"settings {path}: {type(error).__name__}: {str(error).splitlines()[0]}")
    missing = [f"parts.{PARTS[k]}" for k in letters if PARTS[k] not in (settings or {}).get("parts", {})]
    missing += ["study"] if {"a", "e"} & set(letters) and "study" not in (settings or {}) else []
    if missing:
        parser.error(f"settings {path}: no {', '.join(missing)}: expected the sections of {SETTINGS.name}")
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="folder of the summaries and each part's files")
    parser.add_argument("--parts", type=parse_parts, default=list(PARTS), help="comma-separated, e.g. a,b or "
                        "study,throughput (default: all of " + ",".join(PARTS) + ")")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cuda (the check), or cpu: smoke mode, tiny sizes, proves the logic (default cuda)")
    parser.add_argument("--settings", type=Path, default=SETTINGS,
                        help=f"sizes of the parts (default {SETTINGS.name})")
    parser.add_argument("--wheels", metavar="PACKAGE", help="print the pip download of PACKAGE and what it "
                        "needs, less what the device image has, and exit")
    args = parser.parse_args(argv)
    if args.wheels:
        print(probe.wheel_command(args.wheels))
        return 0
    if args.out is None:
        parser.error("the output folder is required")
    all_settings = load_settings(args.settings, args.parts, parser)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the device has no network; nothing here downloads
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a timeout's SIGTERM ends like Ctrl-C
    summary = {"schema_version": 1, "device": args.device,
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "command": [sys.executable, *sys.argv], "environment": probe.environment(), "parts": {}}
    for letter in args.parts:
        reason = skip_reason(letter, args.device, summary["environment"])
        if reason:
            summary["parts"][letter] = {"name": PARTS[letter], "status": "skipped", "skipped": reason}
        else:
            print(f"part {letter} ({PARTS[letter]}) ...", flush=True)
            try:
                summary["parts"][letter] = run_part(letter, args.device, args.out / f"{letter}_{PARTS[letter]}",
                                                    all_settings)
            except KeyboardInterrupt:  # SIGINT, or SIGTERM from a timeout: keep what the others measured
                summary["parts"][letter] = {"name": PARTS[letter], "status": "failed", "error": "interrupted"}
                write_summary(args.out, summary)
                return 1
        part = summary["parts"][letter]
        print(f"part {letter} ({PARTS[letter]}): {part['status']}"
              + (f": {part.get('skipped') or part.get('error') or part.get('failed_checks')}"
                 if part["status"] != "ok" else ""), flush=True)
        write_summary(args.out, summary)
    write_summary(args.out, summary)
    return 1 if any(p["status"] == "failed" for p in summary["parts"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
