"""Parts a, d and e of benchmarks/gpu_check.py: real cells in real processes.

a. the tiny study of benchmarks/gpu_check.yaml end to end through Snakemake twice at once, on the GPU
   (``resources.gpu: 1``: each cell claims the GPU, ``--device auto`` picks CUDA, precision auto bf16)
   and on the CPU in fp32 (``CUDA_VISIBLE_DEVICES=""``: auto finds no GPU), cell against cell;
d. a cell killed with SIGKILL between two checkpoints, run again: does it resume, and how far is its
   final loss from two uninterrupted runs (whose own difference is the device's run-to-run floor);
e. two one-cell studies at once, each ``snakemake --resources gpu=1``, sharing the GPU slot locks
   (workflow_scripts/train/gpu_slots.py): their training must not overlap in time.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

import train_throughput as tt
from workflow_scripts.io import atomic_write_text, read_json

REPO = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict[str, str]:
    """Jobs run this interpreter (first on PATH) and import this checkout's workflow_scripts."""
    env = dict(os.environ, PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    env.setdefault("MPLCONFIGDIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "gpu-check-mpl"))
    env.update(extra)
    return env


def study_config(study: dict, settings: dict, smoke: bool, gpu: int) -> dict:
    """The study of gpu_check.yaml (its smoke sizes under --device cpu) with ``resources.gpu = gpu``."""
    config = copy.deepcopy(study)
    for exp in config["experiments"].values():
        exp["resources"] = {**exp.get("resources", {}), "gpu": gpu}
        if smoke:
            small = settings["smoke"]
            exp.update(models=small["models"], data_sizes=small["data_sizes"])
            exp["model"] = {**exp["model"], "context": small["context"]}
            exp["training"] = {**exp["training"], **small["training"]}
            exp["analysis"] = {**exp.get("analysis", {}), "bootstrap": small["bootstrap"]}
            config["datasets"][exp["dataset"]]["symbols"] = small["symbols"]
    return config


def snakemake_command(workdir: Path, config_path: Path, cores: int, gpus: int, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(config_path), "--cores", str(cores), *extra]
    return command + (["--resources", f"gpu={gpus}"] if gpus else [])


def start_study(workdir: Path, config: dict, cores: int, gpus: int, env: dict, *extra: str) -> subprocess.Popen:
    """``snakemake`` on ``config`` in ``workdir``, its output in ``workdir/snakemake.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.yaml"
    atomic_write_text(config_path, yaml.safe_dump(config, sort_keys=False))
    with open(workdir / "snakemake.log", "w") as log:
        # A session of its own: on a timeout the whole tree (snakemake and its jobs) is stopped together.
        return subprocess.Popen(snakemake_command(workdir, config_path, cores, gpus, *extra), cwd=workdir,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def finish(processes: dict[str, subprocess.Popen], timeout_s: float) -> None:
    """Wait for every study until one deadline; on a timeout or a failure stop them all, then say which."""
    deadline = time.monotonic() + timeout_s
    failed = []
    try:
        for name, process in processes.items():
            try:
                if process.wait(timeout=max(0.0, deadline - time.monotonic())) != 0:
                    failed.append(f"the {name} study exited with status {process.returncode} "
                                  "(see its snakemake.log)")
            except subprocess.TimeoutExpired:
                failed.append(f"the {name} study did not finish in {timeout_s:.0f} s")
    finally:  # also when this process is interrupted: the studies run in sessions of their own
        for process in processes.values():
            stop(process)
    if failed:
        raise RuntimeError("; ".join(failed))


def stop(process: subprocess.Popen) -> None:
    """SIGINT to a running study's process group (Snakemake stops its jobs on it, GUIDE sec. 5), then SIGKILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def cell_runs(config: dict, workdir: Path) -> list[tuple]:
    """(cell, metrics) of every cell of a finished study."""
    # Lazy: the planning layer needs jsonschema, which the device image lacks until Snakemake's wheels come.
    from workflow_scripts.plan.config import validate_config
    from workflow_scripts.plan.grid import expand_grid

    return [(cell, read_json(workdir / "results" / cell.experiment / "runs" / cell.model / cell.data
                             / cell.seed_name / "metrics.json"))
            for cell in expand_grid(validate_config(config))]


def finite(metrics: dict) -> bool:
    values = [metrics[k] for k in ("val_loss", "train_loss", "test_loss", "val_loss_best")]
    return metrics["status"] == "ok" and all(v is not None and math.isfinite(v) for v in values)


def study(device: str, folder: Path, study_cfg: dict, settings: dict) -> dict:
    """Part a."""
    smoke = device == "cpu"
    runs = {"device": study_config(study_cfg, settings, smoke, gpu=1),
            "cpu": study_config(study_cfg, settings, smoke, gpu=0)}
    sizes = settings["smoke"] if smoke else settings
    hidden = child_env(GPU_SLOTS_DIR=str(folder / "locks"), CUDA_VISIBLE_DEVICES="")  # auto finds no GPU
    started = time.perf_counter()
    processes = {
        # Under --device cpu both train on the CPU: the device run's code path, in fp32.
        "device": start_study(folder / "device", runs["device"], sizes["cuda_cores"], 1,
                              hidden if smoke else child_env(GPU_SLOTS_DIR=str(folder / "locks"))),
        "cpu": start_study(folder / "cpu", runs["cpu"], sizes["cpu_cores"], 0, hidden),
    }
    finish(processes, settings["timeout_s"])
    expected = ("cpu", "fp32") if smoke else ("cuda", "bf16")
    rows = []
    for (cell, on_device), (_, on_cpu) in zip(cell_runs(runs["device"], folder / "device"),
                                              cell_runs(runs["cpu"], folder / "cpu")):
        prov = on_device["provenance"]
        rows.append({"cell": f"{cell.model}/{cell.data}", "device": prov["device"],
                     "precision": prov["precision"],
                     "val_loss": on_device["val_loss"], "val_loss_cpu_fp32": on_cpu["val_loss"],
                     "rel_diff": abs(on_device["val_loss"] - on_cpu["val_loss"]) / on_cpu["val_loss"],
                     "tokens_per_s": on_device["tokens_per_s"], "tokens_per_s_cpu": on_cpu["tokens_per_s"],
                     "finite": finite(on_device) and finite(on_cpu)})
    tolerance = settings["rel_tolerance"]
    outputs = ["runs.csv", "fits.json", "figures/loss_vs_N.png"]
    experiment = next(iter(runs["device"]["experiments"]))
    return {
        "seconds_both_studies": time.perf_counter() - started, "rel_tolerance": tolerance, "cells": rows,
        "checks": {
            "every_metric_finite": all(r["finite"] for r in rows),
            f"provenance_says_{expected[0]}_{expected[1]}": all(
                r["device"].split(":")[0] == expected[0] and r["precision"] == expected[1] for r in rows),
            f"val_loss_within_{tolerance:.0%}_of_cpu_fp32": all(r["rel_diff"] <= tolerance for r in rows),
            "study_outputs_written": all((folder / "device" / "results" / experiment / o).exists()
                                         for o in outputs),
        },
    }


def trainer_flags(device: str, settings: dict, tokens_dir: Path, out: Path) -> list[str]:
    model = settings["model"]
    return ["--train-tokens", str(tokens_dir / "train.bin"), "--val-tokens", str(tokens_dir / "val.bin"),
            "--n-layer", str(model["n_layer"]), "--d-model", str(model["d_model"]),
            "--n-head", str(model["n_head"]),
            "--context", str(model["context"]), "--tokens", str(settings["tokens"]),
            "--batch-size", str(settings["batch_size"]), "--eval-tokens", "4096", "--eval-points", "4",
            "--checkpoint-every-steps", str(settings["checkpoint_every_steps"]), "--checkpoint-every-s", "0",
            "--device", device, "--metrics", str(out / "metrics.json"), "--curve", str(out / "curve.csv")]


# The trainer as `python -m workflow_scripts.train.token_cell FLAGS`, optionally with deterministic algorithms
# (token_cell has no flag for them) and sending itself SIGKILL after optimiser step KILL_AT: a kill at a
# known step (no handler runs, as with an outside kill) without racing a poll against millisecond steps.
CELL = """
import os, runpy, signal, sys
kill_at, deterministic = int(sys.argv[1]), sys.argv[2] == "deterministic"
if deterministic:
    import torch
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn_only: an op without one still runs
if kill_at:
    from torch.optim.optimizer import register_optimizer_step_post_hook
    steps = [0]
    def after_step(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    register_optimizer_step_post_hook(after_step)
sys.argv = [sys.argv[0], *sys.argv[3:]]
runpy.run_module("workflow_scripts.train.token_cell", run_name="__main__", alter_sys=True)
"""


def run_cell(flags: list[str], out: Path, algorithms: str, timeout_s: float, kill_at: int = 0):
    """The cell run to its end (or killed after ``kill_at`` steps); its completed process, log in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    # cuBLAS is deterministic only with a fixed workspace (torch.use_deterministic_algorithms docs).
    env = child_env(**({"CUBLAS_WORKSPACE_CONFIG": ":4096:8"} if algorithms == "deterministic" else {}))
    done = subprocess.run([sys.executable, "-c", CELL, str(kill_at), algorithms, *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout_s)
    (out / ("killed.log" if kill_at else "train.log")).write_text(done.stdout + done.stderr)
    expected = -signal.SIGKILL if kill_at else 0
    if done.returncode != expected:
        what = f" to be killed at step {kill_at}" if kill_at else ""
        raise RuntimeError(f"the cell in {out}{what} exited with "
                           f"status {done.returncode}, expected {expected}"
                           f"{' (SIGKILL)' if kill_at else ''}: {done.stderr.strip()[-300:]}")
    if kill_at and (out / "metrics.json").exists():
        raise RuntimeError(f"the cell finished before step {kill_at}: give it more steps")
    return done


def resume_once(device: str, folder: Path, settings: dict, tokens_dir: Path, algorithms: str) -> dict:
    """Killed and rerun, against two uninterrupted runs, under ``algorithms`` (default or deterministic)."""
    timeout = settings["timeout_s"]
    killed = folder / "killed"
    run_cell(trainer_flags(device, settings, tokens_dir, killed), killed, algorithms, timeout,
             settings["kill_at_step"])
    rerun = run_cell(trainer_flags(device, settings, tokens_dir, killed), killed, algorithms, timeout)
    runs = {}
    for name in ("uninterrupted", "uninterrupted_again", "killed"):
        if name != "killed":
            out = folder / name
            run_cell(trainer_flags(device, settings, tokens_dir, out), out, algorithms, timeout)
        runs[name] = (read_json(folder / name / "metrics.json"), pd.read_csv(folder / name / "curve.csv"))
    (ref, ref_curve), (again, again_curve), (resumed, resumed_curve) = runs.values()
    floor = abs(ref["val_loss"] - again["val_loss"])
    diff = abs(resumed["val_loss"] - ref["val_loss"])
    deterministic = floor == 0 and ref_curve.equals(again_curve)
    resumed_from = resumed["provenance"]["resumed_from_steps"]
    # Where two uninterrupted runs differ, that floor sets the bar: 3x it, or 0.5% of the loss.
    tolerance = 0.0 if deterministic else max(3 * floor, 0.005 * ref["val_loss"])
    return {
        "algorithms": algorithms, "steps": ref["steps"], "resumed_from_steps": resumed_from,
        "resume_message": next((l for l in rerun.stderr.splitlines() if "resuming from checkpoint" in l), None),
        "val_loss_uninterrupted": ref["val_loss"], "val_loss_resumed": resumed["val_loss"], "abs_diff": diff,
        "run_to_run_floor": floor, "deterministic_run_to_run": deterministic,
        "bitwise_equal": diff == 0 and resumed_curve.equals(ref_curve), "tolerance": tolerance,
        "resumed_from_its_checkpoint": len(resumed_from) == 1 and 0 < resumed_from[0] < ref["steps"],
        "finished_ok": resumed["status"] == "ok" and resumed["steps"] == ref["steps"],
        "within_tolerance": diff <= tolerance,
    }


def resume(device: str, folder: Path, settings: dict) -> dict:
    """Part d: once per entry of ``algorithms``."""
    model = settings["model"]
    tokens_dir = folder / "tokens"
    tokens_dir.mkdir(parents=True, exist_ok=True)
    tt.write_tokens(tokens_dir, "train", settings["tokens"] + model["context"] + 1, model["vocab_size"], 0)
    tt.write_tokens(tokens_dir, "val", 8192, model["vocab_size"], 1)
    rows = [resume_once(device, folder / algorithms, settings, tokens_dir, algorithms)
            for algorithms in settings["algorithms"]]
    return {"model": model, "killed_at_step": settings["kill_at_step"], "runs": rows,
            "checks": {f"{check}_{row['algorithms']}": row[check] for row in rows
                       for check in ("resumed_from_its_checkpoint", "finished_ok", "within_tolerance")}}


def slots(device: str, folder: Path, study_cfg: dict, settings: dict) -> dict:
    """Part e."""
    config = study_config(study_cfg, {}, smoke=False, gpu=1)
    for exp in config["experiments"].values():
        exp.update(models=[settings["model"]], data_sizes=[settings["data_size"]])
        exp["analysis"] = {**exp.get("analysis", {}), "bootstrap": 0}
    env = child_env(GPU_SLOTS_DIR=str(folder / "locks"))
    if device == "cpu":  # a fake one-GPU machine: the cells hold its lock and train on the CPU
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env["GPU_SLOTS_COUNT"] = "1"
    names = ("first", "second")
    # Data first, so that both studies reach their training job within a second of each other.
    finish({f"{n} (data)": start_study(folder / n, config, 1, 1, env, "--omit-from", "train_cell")
            for n in names}, settings["timeout_s"])
    finish({n: start_study(folder / n, config, 1, 1, env, "--until", "train_cell") for n in names},
           settings["timeout_s"])
    (cell, _), = cell_runs(config, folder / "first")
    rows = []
    for name in names:
        run = folder / name / "results" / cell.experiment / "runs" / cell.model / cell.data / cell.seed_name
        metrics = read_json(run / "metrics.json")
        end = (run / "metrics.json").stat().st_mtime
        log = (folder / name / "results" / cell.experiment / "logs" / "train" / cell.model / cell.data
               / f"{cell.seed_name}.log").read_text()
        rows.append({"study": name, "device": metrics["provenance"]["device"], "gpus_flag":
                     metrics["provenance"]["config"]["gpus"], "train_start": end - metrics["wall_time_s"],
                     "train_end": end, "waited_for_gpu": "waiting for 1 free GPUs" in log})
    rows.sort(key=lambda r: r["train_start"])
    first, second = rows
    t0 = first["train_start"]
    for row in rows:
        row["train_start"], row["train_end"] = row["train_start"] - t0, row["train_end"] - t0
    return {"cell": f"{cell.model}/{cell.data}", "cells": rows,
            "contended": any(r["waited_for_gpu"] for r in rows),
            "checks": {"never_shared_the_device": second["train_start"] >= first["train_end"],
                       "each_claimed_one_gpu": all(r["gpus_flag"] == 1 for r in rows)}}
