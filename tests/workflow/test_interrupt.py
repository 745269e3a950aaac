"""Snakemake stopped mid-study (Ctrl-C, then kill -9) and started again finishes it without re-running cells.

One study is interrupted twice: with SIGINT to the whole process group (what
Ctrl-C sends) once a cell has finished, then, on the restart, with SIGKILL to
Snakemake and its jobs (a crash or power cut) once another has. The third run
(after `snakemake --unlock`, as the README says) completes it. The cells
Snakemake reported finished keep their files untouched, and runs.csv equals
that of an uninterrupted run of the same study, started beside it. The interrupted
study trains a job per cell (``resources.pack: false``), the uninterrupted one the four
cells in one pack (workflow_scripts.plan.packs): the same numbers either way.

A pack killed halfway (SIGKILL once one of its cells is done) and started again writes
that cell back from its record and trains only the others.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, TINY_CONFIG, default_sigint, snakemake, snakemake_env, write_config

pytestmark = pytest.mark.slow

# Four cells, run one at a time (--cores 1) so that they finish seconds apart.
CONFIG = {**TINY_CONFIG, "experiments": {"tiny": {**TINY_CONFIG["experiments"]["tiny"],
                                                  "models": TINY_CONFIG["experiments"]["tiny"]["models"][:2]}}}
ALONE = {**CONFIG, "experiments": {"tiny": {**CONFIG["experiments"]["tiny"], "resources": {"pack": False}}}}
TARGET = "results/tiny/runs.csv"
UNSTABLE = ("wall_time_s", "tokens_per_s")  # differ between two runs of the same cell
CELL_JOB = re.compile(r"rule train_cell:\n(?:    .*\n)*?    output: (\S+/metrics\.json),.*\n(?:    .*\n)*?    jobid: (\d+)\n")


def start(workdir: Path, log: Path) -> subprocess.Popen:
    """snakemake in its own process group (so a signal can reach its jobs too), its output in ``log``."""
    env = snakemake_env(workdir)
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "snakemake", TARGET, "--snakefile", str(REPO / "Snakefile"),
             "--directory", str(workdir), "--cores", "1", "--configfile", str(workdir / "study.yaml")],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=default_sigint)


def cells(output: str, finished: bool) -> set[str]:
    """metrics.json of the training jobs a snakemake output started (or reported finished)."""
    jobs = {jobid: metrics for metrics, jobid in CELL_JOB.findall(output)}
    if not finished:
        return set(jobs.values())
    return {jobs[j] for j in re.findall(r"Finished jobid: (\d+) \(Rule: train_cell\)", output)}


def interrupt_after_a_cell(process: subprocess.Popen, log: Path, sig: signal.Signals, timeout: float = 120) -> set[str]:
    """Send ``sig`` to the process group once a training cell has finished; the cells finished by then."""
    deadline = time.monotonic() + timeout
    while not cells(log.read_text(), finished=True):
        assert process.poll() is None, f"snakemake ended before any cell finished:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    os.killpg(process.pid, sig)
    assert process.wait(timeout=60) != 0
    return cells(log.read_text(), finished=True)


def stamps(workdir: Path, metrics: set[str]) -> dict[str, tuple[int, int]]:
    return {m: ((workdir / m).stat().st_ino, (workdir / m).stat().st_mtime_ns) for m in metrics}


def test_interrupted_study_resumes_without_rerunning_finished_cells(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    for workdir, config in ((reference, CONFIG), (interrupted, ALONE)):
        workdir.mkdir()
        write_config(workdir / "study.yaml", config)
    uninterrupted = start(reference, tmp_path / "reference.log")

    ctrl_c = interrupt_after_a_cell(start(interrupted, tmp_path / "run1.log"), tmp_path / "run1.log", signal.SIGINT)
    assert not (interrupted / ".snakemake" / "locks").exists() or not any((interrupted / ".snakemake" / "locks").iterdir())
    kept = stamps(interrupted, ctrl_c)

    crashed = interrupt_after_a_cell(start(interrupted, tmp_path / "run2.log"), tmp_path / "run2.log", signal.SIGKILL)
    assert not ctrl_c & cells((tmp_path / "run2.log").read_text(), finished=False)  # not started again
    kept |= stamps(interrupted, crashed)

    unlocked = snakemake(interrupted, "--unlock", "--configfile", str(interrupted / "study.yaml"))
    assert unlocked.returncode == 0, unlocked.stderr[-2000:]
    last = snakemake(interrupted, TARGET, "--cores", "1", "--configfile", str(interrupted / "study.yaml"))
    assert last.returncode == 0, last.stderr[-3000:]
    rerun = cells(last.stdout + last.stderr, finished=False)
    assert rerun and not rerun & kept.keys(), (sorted(kept), sorted(rerun))
    assert stamps(interrupted, set(kept)) == kept  # finished cells' files untouched
    assert len(kept) + len(rerun) == 4

    assert uninterrupted.wait(timeout=180) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    runs = [pd.read_csv(d / TARGET).sort_values(["model", "data", "seed"], ignore_index=True)
            for d in (reference, interrupted)]
    numeric = [c for c in runs[0].select_dtypes("number").columns if c not in UNSTABLE]
    assert {"val_loss", "train_loss", "N", "D", "C"} <= set(numeric)
    pd.testing.assert_frame_equal(runs[0][numeric], runs[1][numeric], check_exact=False, rtol=1e-9)


def test_a_pack_killed_halfway_trains_only_its_unfinished_cells_again(tmp_path):
    write_config(tmp_path / "study.yaml", CONFIG)
    run = start(tmp_path, tmp_path / "run1.log")
    deadline = time.monotonic() + 120
    while not (records := sorted((tmp_path / "results/tiny/runs").glob("*/*/seed0/metrics.pack-done.json"))):
        assert run.poll() is None, (tmp_path / "run1.log").read_text()[-3000:]
        assert time.monotonic() < deadline, (tmp_path / "run1.log").read_text()[-3000:]
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)
    done = {r.parent: (r.parent / "metrics.json").read_bytes() for r in records}  # a record follows its outputs

    assert snakemake(tmp_path, "--unlock", "--configfile", str(tmp_path / "study.yaml")).returncode == 0
    last = snakemake(tmp_path, TARGET, "--cores", "1", "--configfile", str(tmp_path / "study.yaml"))
    assert last.returncode == 0, last.stderr[-3000:]
    logs = {cell: (tmp_path / "results/tiny/logs/train" / cell.parent.parent.name / cell.parent.name /
                   f"{cell.name}.log").read_text() for cell in (tmp_path / "results/tiny/runs").glob("*/*/seed0")}
    assert len(logs) == 4 and {c for c, log in logs.items() if "written back" in log} == set(done)
    assert {cell: (cell / "metrics.json").read_bytes() for cell in done} == done
    assert not list((tmp_path / "results/tiny/runs").glob("*/*/*/metrics.pack-done.json"))
