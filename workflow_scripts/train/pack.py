"""Train a pack of small cells one after another in one process (workflow_scripts.plan.packs).

    python -m workflow_scripts.train.pack --trainer workflow_scripts.train.samples_cell \\
        --log a.log --benchmark a.tsv --cell '--family mlp --width 2 ... --metrics a/metrics.json ...' \\
        --log b.log --benchmark b.tsv --cell '--family mlp --width 4 ... --metrics b/metrics.json ...'

Each ``--cell`` is the command line the cell is run with alone (``python -m <trainer> <cell>``);
the pack runs the trainer's ``main`` on it, so a cell trains the same numbers packed or not
(tests/train/test_pack.py). What the cell prints goes to its ``--log``; its wall and CPU time
and the process's peak memory so far go to its ``--benchmark`` file, in Snakemake's columns
and one more, ``packed`` (true).
Every cell's flags are parsed before any trains, so a bad one fails the pack in one line first.

A failed or stopped pack is rerun whole by Snakemake, which removes the outputs of its
finished cells first. So each finished cell also leaves a record beside its outputs
(``metrics.pack-done.json``: its flags, metrics and curve): a rerun whose cell has the same
flags writes the outputs back from it instead of training again, the cell that was stopped
resumes from its checkpoint, and the rest train. The records go when the whole pack is done.
A stop signal (SLURM's SIGTERM or SIGUSR1) stops the cell training at its next step, as
alone; one that comes between cells starts no further cell.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import resource
import shlex
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from workflow_scripts.io import atomic_write_json, atomic_write_text, read_json
from workflow_scripts.train.checkpoint import STOP_SIGNALS, cell_identity

TRAINERS = ("workflow_scripts.train.samples_cell", "workflow_scripts.train.token_cell")
# Snakemake's columns, and ``packed``: the line is a cell's share of its pack's job, whose own
# benchmark file (results/<experiment>/benchmarks/packs/) holds the whole job.
BENCHMARK_COLUMNS = ("s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out",
                     "mean_load", "cpu_time", "packed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainer", required=True, choices=TRAINERS)
    parser.add_argument("--log", action="append", required=True, help="a cell's log, one per --cell, in order")
    parser.add_argument("--benchmark", action="append", required=True, help="a cell's benchmark file")
    parser.add_argument("--cell", action="append", required=True, help="a cell's flags, as one argument")
    args = parser.parse_args(argv)
    if not len(args.log) == len(args.benchmark) == len(args.cell):
        parser.error(f"{len(args.cell)} --cell, {len(args.log)} --log and {len(args.benchmark)} --benchmark: "
                     "expected one of each per cell")
    return args


def record_path(metrics: str | Path) -> Path:
    """``.../metrics.json`` → ``.../metrics.pack-done.json``."""
    metrics = Path(metrics)
    return metrics.with_name(metrics.stem + ".pack-done.json")


def keep(cfg) -> None:
    """The finished cell's record: what its outputs hold, and the flags they were trained with."""
    atomic_write_json(record_path(cfg.metrics), {
        "identity": cell_identity(asdict(cfg)),
        "metrics": read_json(cfg.metrics),
        "curve": Path(cfg.curve).read_text(),
    })


def restore(cfg) -> bool:
    """Write the cell's outputs back from its record, if it has one with the same flags."""
    path = record_path(cfg.metrics)
    if not path.exists():
        return False
    record = read_json(path)
    if record["identity"] != cell_identity(asdict(cfg)):
        return False  # trained with other flags: train again (keep overwrites it)
    atomic_write_text(cfg.curve, record["curve"])
    atomic_write_json(cfg.metrics, record["metrics"])
    print(f"{cfg.metrics}: finished in an earlier run of this pack; written back from {path}")
    return True


@contextlib.contextmanager
def output_to(log: str) -> Iterator[None]:
    """The process's stdout and stderr (file descriptors 1 and 2, so torch's own messages too) into
    ``log``; an error ending the cell is also written there, as its one last line."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "w") as file:
            os.dup2(file.fileno(), 1)
            os.dup2(file.fileno(), 2)
            try:
                yield
            except SystemExit as stop:  # the trainer's one-line error (or a stop signal's exit)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
                raise
            finally:
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def benchmark_line(seconds: float, cpu_seconds: float) -> str:
    """Snakemake's benchmark columns; what a process shared by several cells cannot split is NA."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the process's peak so far
    values = {"s": f"{seconds:.4f}", "h:m:s": time.strftime("%H:%M:%S", time.gmtime(seconds)),
              "max_rss": f"{peak_mb:.2f}", "cpu_time": f"{cpu_seconds:.2f}", "packed": "true"}
    header = "\t".join(BENCHMARK_COLUMNS)
    return f"{header}\n" + "\t".join(values.get(column, "NA") for column in BENCHMARK_COLUMNS) + "\n"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StopRequest:
    """A stop signal that came between cells (during one, the cell's own handler takes it)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.request)

    def request(self, signum, frame) -> None:
        self.signum = signum

    def exit_if_requested(self, left: int) -> None:
        if self.signum is not None:
            print(f"received {signal.Signals(self.signum).name}: {left} cells of the pack not started; "
                  f"exiting with status {128 + self.signum} so the job is retried", file=sys.stderr)
            sys.exit(128 + self.signum)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    trainer = importlib.import_module(args.trainer)
    commands = [shlex.split(cell) for cell in args.cell]
    configs = [trainer.parse_args(command) for command in commands]  # every cell's flags, before any trains
    stop = StopRequest()
    for i, (command, cfg, log, benchmark) in enumerate(zip(commands, configs, args.log, args.benchmark)):
        stop.exit_if_requested(len(commands) - i)
        print(f"cell {i + 1}/{len(commands)}: {cfg.metrics} (log {log})", flush=True)
        wall, cpu = time.perf_counter(), cpu_seconds()
        with output_to(log):
            if restore(cfg):
                continue
            trainer.main(command)
            keep(cfg)
        atomic_write_text(benchmark, benchmark_line(time.perf_counter() - wall, cpu_seconds() - cpu))
    for cfg in configs:
        record_path(cfg.metrics).unlink(missing_ok=True)


if __name__ == "__main__":
    from workflow_scripts import jobs  # a failure ends in one line (traceback in the log); success skips teardown

    jobs.run(main)
