"""The SLURM profile on a real single-node cluster: a tiny study gives the numbers of a local run.

The cluster (Debian's slurmctld, slurmd, slurm-client and munge, installed by
.ci/run) is brought up by tests/workflow/slurm/slurm-up.sh as root and stopped by the
pids it wrote, whatever the test does. Without the packages or root the test
fails: it is the only check that `snakemake --profile slurm` really submits.
A second study has one cell of a few seconds that is `scancel`led mid-training:
Snakemake retries it and it resumes from its checkpoint, ending as an uninterrupted run.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.helpers import REPO, TINY_CONFIG, snakemake_env, write_config

pytestmark = pytest.mark.slow

SLURM_DIR = REPO / "tests" / "workflow" / "slurm"
# A GPU cell beside the tiny study: the test cluster declares one fake GPU
# (a GRES backed by /dev/null); the cell still trains on the CPU.
GPU_EXPERIMENT = {
    **TINY_CONFIG["experiments"]["tiny"],
    "models": [{"n_layer": 1, "d_model": 8, "n_head": 2}],
    "data_sizes": [4096],
    "resources": {"gpu": 1, "gpu_model": "fake"},
}
GPU_CELL = "results/tinygpu/runs/L1-d8-h2/D4096/seed0/metrics.json"
TARGETS = ["results/tiny/runs.csv", "results/tiny/fits.json", GPU_CELL]
# Columns of runs.csv that differ between two runs of the same cell.
UNSTABLE = ("wall_time_s", "tokens_per_s")


def run_workflow(workdir: Path, *args: str, timeout: int = 300) -> tuple[subprocess.CompletedProcess, float]:
    """snakemake from the repository root (where `--profile slurm` is looked up); wall seconds beside it.

    On timeout it is stopped with SIGINT, on which it cancels its SLURM jobs.
    """
    env = snakemake_env(workdir)
    command = [sys.executable, "-m", "snakemake", *args, "--directory", str(workdir)]
    start = time.perf_counter()
    with subprocess.Popen(command, cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=60)
            pytest.fail(f"snakemake {' '.join(args)} ran past {timeout} s:\n{output[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, output, ""), time.perf_counter() - start


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(tool) is None]
    assert not missing, f"{missing} not installed: .ci/run installs slurmctld slurmd slurm-client munge"
    assert os.geteuid() == 0, "the test SLURM cluster is started as root (daemons, /etc/slurm)"
    state = tmp_path_factory.mktemp("slurm")
    try:
        start = time.perf_counter()
        up = subprocess.run(["bash", str(SLURM_DIR / "slurm-up.sh"), str(state), "--fake-gpu"],
                            capture_output=True, text=True, timeout=120)
        bring_up_s = time.perf_counter() - start
        logs = "".join(f"\n{p.name}:\n{p.read_text()[-1500:]}" for p in sorted((state / "log").glob("*.log")))
        assert up.returncode == 0, up.stdout + up.stderr + logs
        yield SimpleNamespace(state=state, bring_up_s=bring_up_s)
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "slurm-down.sh"), str(state)], timeout=60)


def test_profile_resolves_from_repository_root(tmp_path):
    """`--profile slurm` finds ./slurm (Snakemake does not look in profiles/), with the workflow profile."""
    config = write_config(tmp_path / "tiny.yaml", TINY_CONFIG)
    result, _ = run_workflow(tmp_path, "-n", "--profile", "slurm", "--configfile", str(config))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Using profiles slurm and workflow specific profile profiles/default" in result.stdout
    # the profile's default resources reach the cheap jobs; cells carry their own estimates, and the
    # pack of the six tiny cells their largest memory and summed time (workflow_scripts.plan.jobs)
    assert re.search(r"resources: .*mem_mb=4000.*runtime=30", result.stdout), result.stdout[-3000:]
    pack = re.search(r"rule train_pack_tiny_0:\n(?:\s+.*\n)*?\s+resources: (.*)", result.stdout)
    assert pack and re.search(r"mem_mb=1000.*runtime=60$", pack[1]), result.stdout[-3000:]


def slurm_jobs() -> dict[str, dict[str, str]]:
    """Every job the controller still remembers (MinJobAge = 300 s), as key=value fields by job id."""
    shown = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs = [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in shown.splitlines() if line.strip()]
    return {job["JobId"]: job for job in jobs}


def train_wave_s(log: str) -> float:
    """Seconds from the first training job's submission (a cell's or a pack's) to the last one's end,
    from snakemake's log."""
    stamps = []
    for stamp, line in re.findall(r"^\[(.+?)\]\n(.*)$", log, flags=re.M):
        if re.fullmatch(r"rule (train_cell|train_pack_\w+):|.*\(Rule: (train_cell|train_pack_\w+)\)", line):
            stamps.append(datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y"))
    return (max(stamps) - min(stamps)).total_seconds()


def test_tiny_study_through_slurm_matches_local(slurm_cluster, tmp_path):
    config = {**TINY_CONFIG, "experiments": {**TINY_CONFIG["experiments"], "tinygpu": GPU_EXPERIMENT}}
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local_dir, slurm_dir):
        workdir.mkdir()
        write_config(workdir / "tiny.yaml", config)

    local, local_s = run_workflow(local_dir, *TARGETS, "--cores", "2", "--configfile", str(local_dir / "tiny.yaml"))
    assert local.returncode == 0, local.stdout[-3000:]
    slurm, slurm_s = run_workflow(slurm_dir, *TARGETS, "--profile", "slurm", "--profile", "tests/workflow/slurm/profile",
                                  "--configfile", str(slurm_dir / "tiny.yaml"))
    assert slurm.returncode == 0, slurm.stdout[-5000:]
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", slurm.stdout)
    assert submitted, slurm.stdout[-3000:]
    # The six tiny cells are one pack's job (workflow_scripts.plan.packs), the GPU cell its own.
    assert "rule train_pack_tiny_0:" in slurm.stdout and "rule train_cell:" in slurm.stdout

    # The same cells, losses and fits as the local run.
    runs = {name: pd.read_csv(d / "results/tiny/runs.csv").sort_values(["model", "data", "seed"], ignore_index=True)
            for name, d in (("local", local_dir), ("slurm", slurm_dir))}
    assert list(runs["local"]["model"]) == list(runs["slurm"]["model"])
    numeric = [c for c in runs["local"].select_dtypes("number").columns if c not in UNSTABLE]
    assert {"val_loss", "val_loss_best", "train_loss", "N", "D", "C"} <= set(numeric)
    pd.testing.assert_frame_equal(runs["local"][numeric], runs["slurm"][numeric], check_exact=False, rtol=1e-9)
    fits = {name: json.loads((d / "results/tiny/fits.json").read_text())["laws"]
            for name, d in (("local", local_dir), ("slurm", slurm_dir))}
    fitted = [law for law, fit in fits["local"].items() if "params" in fit]
    assert "L(N)" in fitted and fits["local"].keys() == fits["slurm"].keys()
    for law in fitted:
        for part in ("params", "ci"):
            local_values, slurm_values = fits["local"][law][part], fits["slurm"][law][part]
            assert local_values.keys() == slurm_values.keys()
            for key in local_values:
                # equal up to the optimiser's rounding (BLAS threads differ inside a SLURM job)
                np.testing.assert_allclose(slurm_values[key], local_values[key], rtol=1e-6, err_msg=f"{law} {key}")
    for name, d in (("local", local_dir), ("slurm", slurm_dir)):
        gpu_metrics = json.loads((d / GPU_CELL).read_text())
        assert gpu_metrics["status"] == "ok", name

    # Only the GPU cell asked SLURM for a GPU (`--gpus=fake:1`), and got one.
    jobs = slurm_jobs()
    assert set(submitted) <= jobs.keys()
    with_gpu = {i for i in submitted if "gpu" in jobs[i].get("TresPerJob", "")}
    gpu_job = [i for i in submitted if "tinygpu" in jobs[i].get("Comment", "")]
    assert len(gpu_job) == 1 and with_gpu == set(gpu_job), {i: jobs[i].get("TresPerJob") for i in submitted}
    assert jobs[gpu_job[0]]["TresPerJob"] == "gres:gpu:fake:1"
    assert all(jobs[i]["JobState"] == "COMPLETED" for i in submitted)

    benchmarks = [pd.read_csv(p, sep="\t")["s"].iloc[0]
                  for p in (slurm_dir / "results").glob("*/benchmarks/train/*/*/*.tsv")]
    print(f"\nSLURM bring-up {slurm_cluster.bring_up_s:.1f} s; study of 6 cells (one pack) + 1 GPU cell: "
          f"local {local_s:.0f} s, SLURM {slurm_s:.0f} s in {len(submitted)} sbatch jobs; "
          f"training cells side by side: wave {train_wave_s(slurm.stdout):.0f} s "
          f"for cells of at most {max(benchmarks):.1f} s")


# One cell of a few seconds (1,024 steps) beside nothing else, to be cancelled mid-training.
RESUME_CONFIG = {
    "datasets": {"synthetic": {**TINY_CONFIG["datasets"]["synthetic"],
                               "symbols": {"train": 300000, "val": 4000, "test": 4000}}},
    "tokenizers": TINY_CONFIG["tokenizers"],
    "experiments": {"resume": {**TINY_CONFIG["experiments"]["tiny"],
                               "models": [{"n_layer": 2, "d_model": 32, "n_head": 2}],
                               "data_sizes": [262144]}},
}
RESUME_CELL = "results/resume/runs/L2-d32-h2/D262144/seed0/metrics.json"
RESUME_LOG = "results/resume/logs/train/L2-d32-h2/D262144/seed0.log"


def cancel_when_checkpointed(checkpoint: Path, cancelled: dict, timeout: float = 240) -> None:
    """Watcher thread: once the cell has written a checkpoint, `scancel` its SLURM job and
    note what the job and the checkpoint were like after the cancel."""
    deadline = time.monotonic() + timeout
    while not checkpoint.exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    # The only job running now is the cell's (the data job has finished before it was submitted).
    shown = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%j|%k"],
                           capture_output=True, text=True).stdout.split()
    running = [line.split("|", 2) for line in shown]
    cells = [job for job in running if "train" in job[2]] or running
    if len(cells) != 1:
        cancelled["error"] = f"expected one running training job, squeue shows {running}"
        return
    cancelled["job"], _, cancelled["comment"] = cells[0]
    subprocess.run(["scancel", cancelled["job"]], check=True)
    cancelled["at"], state = time.monotonic(), ""
    while time.monotonic() < deadline:  # until SLURM has ended it (SIGTERM; SIGKILL after KillWait)
        state = subprocess.run(["squeue", "-h", "-j", cancelled["job"], "-t", "all", "-o", "%T"],
                               capture_output=True, text=True).stdout.strip()
        if state not in ("RUNNING", "COMPLETING"):
            break
        time.sleep(0.1)
    cancelled["state"], cancelled["ended_s"] = state, time.monotonic() - cancelled["at"]
    cancelled["checkpoint_left"] = checkpoint.exists()


def test_cancelled_cell_is_retried_and_resumes_from_its_checkpoint(slurm_cluster, tmp_path):
    """`scancel` mid-training: the cell checkpoints on SIGTERM, the plugin reports the job
    CANCELLED as failed, Snakemake submits it again (--retries 1) and the retry resumes from
    the checkpoint (not a declared output, so it is not deleted), ending with the losses of
    an uninterrupted run."""
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    for workdir in (local_dir, slurm_dir):
        workdir.mkdir()
        write_config(workdir / "resume.yaml", RESUME_CONFIG)
    local, local_s = run_workflow(local_dir, RESUME_CELL, "--cores", "2",
                                  "--configfile", str(local_dir / "resume.yaml"))
    assert local.returncode == 0, local.stdout[-3000:]

    checkpoint = (slurm_dir / RESUME_CELL).with_name("metrics.checkpoint.pt")
    cancelled: dict = {}
    watcher = threading.Thread(target=cancel_when_checkpointed, args=(checkpoint, cancelled), daemon=True)
    watcher.start()
    slurm, slurm_s = run_workflow(slurm_dir, RESUME_CELL, "--profile", "slurm", "--profile", "tests/workflow/slurm/profile",
                                  "--retries", "1", "--configfile", str(slurm_dir / "resume.yaml"))
    watcher.join(timeout=60)
    assert "job" in cancelled, f"{cancelled}\n{slurm.stdout[-3000:]}"
    assert slurm.returncode == 0, slurm.stdout[-5000:]

    # SLURM ended the job as CANCELLED; the plugin reported it failed and Snakemake submitted the cell again.
    assert cancelled["state"] == "CANCELLED", cancelled
    assert slurm_jobs()[cancelled["job"]]["JobState"] == "CANCELLED"
    # (the plugin's "SLURM status is: 'CANCELLED'" message is not printed: Snakemake's GroupJob.log_error
    # drops it, and small cells run as group jobs; SLURM's own log of the job says it)
    slurm_log = slurm_dir / ".snakemake/slurm_logs/group_train_small_train_cell" / f"{cancelled['job']}.log"
    assert f"JOB {cancelled['job']} ON" in slurm_log.read_text() and "CANCELLED AT" in slurm_log.read_text()
    assert "Error in group train_small" in slurm.stdout, slurm.stdout[-3000:]
    assert "Trying to restart job" in slurm.stdout, slurm.stdout[-3000:]
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", slurm.stdout)
    retry = submitted[submitted.index(cancelled["job"]) + 1:]
    assert len(retry) == 1 and slurm_jobs()[retry[0]]["JobState"] == "COMPLETED", (submitted, cancelled)

    # The retry resumed from the checkpoint, which survived the failed job's cleanup, and removed it at the end.
    assert cancelled["checkpoint_left"], cancelled
    log = (slurm_dir / RESUME_LOG).read_text()
    resumed = re.findall(r"resuming from checkpoint \S+metrics\.checkpoint\.pt at step (\d+)", log)
    runs = (("local", local_dir), ("slurm", slurm_dir))
    metrics = {name: json.loads((d / RESUME_CELL).read_text()) for name, d in runs}
    steps = metrics["local"]["steps"]
    assert len(resumed) == 1 and 0 < int(resumed[0]) < steps, log
    # The cancelled attempt's log, which Snakemake printed before the retry overwrote it: the cell caught
    # SIGTERM and checkpointed at the next step (had SIGKILL come first, the last periodic checkpoint
    # would have been resumed instead, with the same final numbers).
    stopped = re.findall(r"received SIGTERM: checkpoint written to \S+ at step (\d+)/(\d+); "
                         r"exiting with status 143", slurm.stdout)
    assert set(stopped) == {(resumed[0], str(steps))}, slurm.stdout[-3000:]  # printed for the group and its job
    assert metrics["slurm"]["provenance"]["resumed_from_steps"] == [int(resumed[0])]
    assert metrics["local"]["provenance"]["resumed_from_steps"] == []
    assert not checkpoint.exists()

    # The same numbers as the uninterrupted local run, bit for bit (one CPU thread each).
    for key in ("status", "steps", "D", "val_loss", "val_loss_best", "train_loss"):
        assert metrics["slurm"][key] == metrics["local"][key], key
    curves = {name: pd.read_csv((d / RESUME_CELL).with_name("curve.csv")) for name, d in runs}
    pd.testing.assert_frame_equal(curves["local"], curves["slurm"], check_exact=True)
    print(f"\ncancelled SLURM job {cancelled['job']} ({cancelled['comment']}) "
          f"{cancelled['ended_s']:.1f} s after scancel, state {cancelled['state']}; retried as job {retry[0]}, "
          f"resumed at step {resumed[0]}/{steps}; local {local_s:.0f} s, SLURM {slurm_s:.0f} s")
