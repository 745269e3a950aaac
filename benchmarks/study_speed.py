"""Speed of whole studies, each against a peer measured in the same run (issue 16, item 5).

    python benchmarks/study_speed.py                           # all parts, ≈ 12 min on 2 cores (11.5 measured)
    python benchmarks/study_speed.py --parts sine,fixed,dag    # without the default study (≈ 5 min)
    python benchmarks/study_speed.py --quick --parts sine,fixed,dag   # ≈ 30 s: the test's run
    python benchmarks/study_speed.py --default-results results --default-wall 390   # reuse a run

Parts (``--parts``, comma-separated; each prints its lines, then all print a summary):

- ``sine``: the sine model-scaling study (config/sine.yaml, experiment ``sine_N``: widths 2…256,
  2,048 samples, 500 full-batch Adam epochs, 3 seeds: 24 cells) as ``snakemake --cores 2`` in a
  temporary folder, with a config holding only that experiment and its dataset and its 24
  ``metrics.json`` as the targets (data preparation + training, no fits or figures), against
  the blog's plain loop (../shared/seeds/001) over the same runs in one process on one thread:
  its ``nn.Sequential`` tanh MLP, ``torch.optim.Adam`` at lr 1e-2, 500 full-batch epochs, the
  validation MSE at the end, on the same samples (the project's sine generator, each seed's
  2,048 training samples as the cells take them). Both are timed from process start to exit
  (the loop pays ``import torch`` once, the pipeline once per job); speedup = loop / pipeline.
- ``default``: the default study (config/config.yaml, all of it: data, training, fits, figures)
  as ``snakemake --cores 2``; its training FLOPs (the sum of the cells' ``C``) at the fp32
  peak (a 2048³ matmul on one thread, timed before and after, as benchmarks/train_throughput.py
  times it) over wall × cores: the machine's share that training used. ``--default-results``
  reads an existing results folder instead (``--default-wall``: its snakemake wall time, if
  one was measured; without it only the training jobs' own share is given).
- ``fixed``: a tiny token cell's and a tiny samples cell's fixed cost, from process start to
  the first training step (of which ``import torch``) and from ``metrics.json`` written to the
  process's exit, against a bare ``python -c 'import torch'`` (interleaved repeats, medians).
- ``dag``: ``snakemake -n`` of a 10,000-cell grid against a trivial workflow of as many jobs
  (benchmarks/dag_speed.py's ``measure``).

``--quick``: the sine study at widths 2 and 4 with one seed, one repeat of the fixed cost, a
100-cell DAG, and the default study only from ``--default-results``. ``--json PATH`` writes
every number printed. The machine's load average is printed before and after each part: on a
shared machine every wall time stretches with it.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]  # the sibling benchmarks, and this checkout's workflow_scripts
import dag_speed  # noqa: E402
import train_throughput as tt  # noqa: E402

PARTS = ("sine", "default", "fixed", "dag")
CORES = 2
SPEEDUP_TARGET = 1.5


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def timed(command: list[str], **kwargs) -> tuple[str, float, float]:
    """Run ``command`` to its end: its stdout, wall seconds, and CPU seconds (user + system) of it and every
    process it waited for; fails loudly. CPU time is beside wall time because on a shared machine the
    neighbours stretch the wall time of a two-core run more than that of a one-core run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_snakemake(workdir: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``snakemake --cores 2`` of this repository's workflow in ``workdir``."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--cores", str(CORES), *args]
    env = dict(os.environ, MPLCONFIGDIR=str(workdir / ".mplconfig"),
               PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))))
    return timed(command, env=env)[1:]


# --- sine: the pipeline against the blog's loop ---------------------------------------------------

def sine_config(quick: bool) -> dict:
    """config/sine.yaml with only sine_N and its dataset (widths 2 and 4, one seed, when quick)."""
    study = yaml.safe_load((REPO / "config" / "sine.yaml").read_text())
    exp = copy.deepcopy(study["experiments"]["sine_N"])
    exp["analysis"].pop("compare", None)  # its peer experiment is not in this config
    if quick:
        exp["size_sweep"]["count"], exp["seeds"] = 2, [0]
    return {"datasets": {exp["dataset"]: study["datasets"][exp["dataset"]]}, "experiments": {"sine_N": exp}}


def blog_loop(spec: dict) -> None:
    """The blog's loop over ``spec["runs"]`` in this process (``--loop-child``): one thread, its MLP and
    Adam, on the samples the cells train on; prints one JSON line of the runs' validation MSEs."""
    import numpy as np
    import torch
    from torch import nn, optim

    from workflow_scripts.data.samples import prepare_samples
    from workflow_scripts.train.samples_cell import train_subset

    torch.set_num_threads(1)
    folder = Path(spec["folder"])
    prepare_samples(spec["dataset"], folder)  # the generation the pipeline's prepare job does
    train_x, train_y = (np.load(folder / f"train.{p}.npy") for p in "xy")
    x_val, y_val = (torch.from_numpy(np.load(folder / f"val.{p}.npy")) for p in "xy")

    class MLP(nn.Module):  # the blog's, as written
        def __init__(self, width: int):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                                     nn.Linear(width, 1))

        def forward(self, x):
            return self.net(x)

    errors, train_s = [], 0.0
    for width, seed in spec["runs"]:
        t0 = time.perf_counter()
        subset = train_subset(len(train_x), spec["samples"], seed)
        x_train, y_train = torch.from_numpy(train_x[subset]), torch.from_numpy(train_y[subset])  # (D, 1)
        torch.manual_seed(seed)
        model = MLP(width)
        opt = optim.Adam(model.parameters(), lr=spec["lr"])
        for _ in range(spec["epochs"]):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x_train), y_train)
            loss.backward()
            opt.step()
        with torch.no_grad():
            errors.append(nn.functional.mse_loss(model(x_val), y_val).item())
        train_s += time.perf_counter() - t0
    print(json.dumps({"val_mse": errors, "train_s": train_s}))


def time_loop(spec: dict, folder: Path) -> dict:
    """The blog's loop as its own process: wall seconds start to exit, its training seconds, its MSEs."""
    command = [sys.executable, __file__, "--loop-child", json.dumps(spec | {"folder": str(folder)})]
    stdout, wall, cpu = timed(command, cwd=REPO)
    return {"wall": wall, "cpu": cpu, **json.loads(stdout.strip().splitlines()[-1])}


def job_seconds(benchmarks: Path) -> tuple[int, float]:
    """The cells with a benchmark file under ``benchmarks/train``, and the seconds of the jobs that trained
    them: a cell's own job, or the pack's (``benchmarks/packs``; a packed cell's line, marked ``packed``,
    is its share of the pack's job, workflow_scripts.train.pack)."""
    def row(path: Path) -> dict:
        return next(csv.DictReader(path.open(), delimiter="\t"))

    cells = [row(p) for p in sorted((benchmarks / "train").rglob("*.tsv"))]
    packs = [row(p) for p in sorted((benchmarks / "packs").rglob("*.tsv"))]
    return len(cells), sum(float(r["s"]) for r in cells + packs if r.get("packed") != "true")


def time_pipeline(workdir: Path, config: Path, targets: list[str]) -> dict:
    """``snakemake --cores 2`` of the targets: wall seconds, the jobs' and the trainers' seconds, the MSEs."""
    wall, cpu = run_snakemake(workdir, *targets, "--configfile", str(config))
    metrics = [json.loads((workdir / t).read_text()) for t in targets]
    return {"wall": wall, "cpu": cpu, "val_mse": [m["val_loss"] for m in metrics],
            "job_s": job_seconds(workdir / "results" / "sine_N" / "benchmarks")[1],
            "train_s": sum(m["wall_time_s"] for m in metrics)}


def sine_part(quick: bool, repeats: int) -> dict:
    from workflow_scripts.plan.config import validate_config
    from workflow_scripts.plan.grid import expand_grid
    from workflow_scripts.plan.inputs import run_file

    config = sine_config(quick)
    resolved = validate_config(config)
    exp = resolved["experiments"]["sine_N"]
    cells = expand_grid(resolved)
    targets = [run_file(cell, "metrics.json") for cell in cells]
    training = exp["training"]
    # What blog_loop does: full batch, a constant rate, plain Adam.
    assert (training["batch_size"], training["schedule"], training["weight_decay"]) == (0, "constant", 0)
    spec = {"dataset": resolved["datasets"][exp["dataset"]], "runs": [(c.width, c.seed) for c in cells],
            "samples": exp["data_sizes"][0], "epochs": training["epochs"], "lr": training["lr"]}
    widths = sorted({c.width for c in cells})
    print(f"sine: {len(cells)} cells (widths {widths[0]}..{widths[-1]}, seeds {exp['seeds']}, "
          f"{spec['samples']:,} samples, {spec['epochs']} full-batch epochs); {load()}", flush=True)
    runs = {"loop": [], "pipeline": []}
    with tempfile.TemporaryDirectory(prefix="study_speed.sine.") as tmp:
        root = Path(tmp)
        (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        for rep in range(repeats):
            for which in list(runs) if rep % 2 == 0 else list(runs)[::-1]:
                folder = root / f"{which}{rep}"
                folder.mkdir()
                runs[which].append(time_loop(spec, folder / "samples") if which == "loop"
                                   else time_pipeline(folder, root / "config.yaml", targets))
                print(f"  {which}: {runs[which][-1]['wall']:.1f} s; {load()}", flush=True)
    loop, pipe = ({k: statistics.median(r[k] for r in runs[which]) for k in runs[which][0] if k != "val_mse"}
                  for which in runs)
    loop_mse, pipe_mse = runs["loop"][-1]["val_mse"], runs["pipeline"][-1]["val_mse"]
    speedup = loop["wall"] / pipe["wall"]
    result = {"cells": len(cells), "target": "the cells' metrics.json (data preparation + training)",
              "repeats": repeats, "loop_s": loop["wall"], "pipeline_s": pipe["wall"], "speedup": speedup,
              "speedup_target": SPEEDUP_TARGET, "met": speedup >= SPEEDUP_TARGET,
              "loop_cpu_s": loop["cpu"], "pipeline_cpu_s": pipe["cpu"],
              "loop_training_s": loop["train_s"], "cells_job_s": pipe["job_s"],
              "cells_training_s": pipe["train_s"],
              "fixed_per_cell_s": (pipe["job_s"] - pipe["train_s"]) / len(cells),
              "runs": {which: [r["wall"] for r in rs] for which, rs in runs.items()},
              "val_mse_median": {"loop": statistics.median(loop_mse),
                                 "pipeline": statistics.median(pipe_mse)},
              # The cells' Net starts from the weights of the blog's nn.Sequential (same seed, same layers).
              "val_mse_max_rel_diff": max(abs(a - b) / abs(b) for a, b in zip(loop_mse, pipe_mse))}
    print(f"  plain loop (one process, one thread): {loop['wall']:.1f} s; snakemake --cores {CORES}: "
          f"{pipe['wall']:.1f} s (medians of {repeats}); CPU seconds (user + system) {loop['cpu']:.1f} and "
          f"{pipe['cpu']:.1f}")
    print(f"  where the time goes: the loop trains for {loop['train_s']:.1f} s (the rest is its start, "
          f"imports and data); the cells' jobs take {pipe['job_s']:.1f} s summed (their benchmark files), "
          f"{pipe['train_s']:.1f} s of it inside the trainers (metrics.json wall_time_s): "
          f"{result['fixed_per_cell_s']:.2f} s fixed cost per cell; {pipe['job_s'] / CORES:.1f} s on {CORES} "
          f"cores if perfectly packed")
    print(f"  speedup loop / pipeline: {speedup:.2f}x (target >= {SPEEDUP_TARGET}x: "
          f"{'met' if result['met'] else 'not met'}); median validation MSE loop "
          f"{result['val_mse_median']['loop']:.2e}, pipeline {result['val_mse_median']['pipeline']:.2e} "
          f"(largest relative difference of a run {result['val_mse_max_rel_diff']:.1e}); {load()}")
    return result


# --- default: the default study's share of the machine --------------------------------------------

def matmul_peak(repeats: int = 5) -> float:
    """FLOP/s of a 2048³ fp32 matmul on one thread (train_throughput's job and timing)."""
    import torch

    torch.set_num_threads(1)
    rates = tt.time_interleaved({"peak": tt.matmul_job()}, tt.Clock("wall", 1), repeats, 0.3)
    return rates["peak"][0]


def study_record(results: Path) -> dict:
    """Sum of the training FLOPs of the default study's cells under ``results``, and their jobs' seconds."""
    experiments = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["experiments"]
    metrics = [p for e in experiments for p in sorted((results / e / "runs").glob("*/*/*/metrics.json"))]
    if not metrics:
        sys.exit(f"{results}: no {'|'.join(experiments)}/runs/*/*/*/metrics.json: "
                 "not a default study's results")
    jobs = [job_seconds(results / e / "benchmarks") for e in experiments]
    n_jobs, job_s = sum(n for n, _ in jobs), sum(s for _, s in jobs)
    mtimes = [p.stat().st_mtime for p in results.rglob("*") if p.is_file()]
    return {"cells": len(metrics), "flops": sum(json.loads(p.read_text())["C"] for p in metrics),
            "train_job_s": job_s if n_jobs == len(metrics) else None,
            "outputs_span_s": max(mtimes) - min(mtimes)}


def default_part(results: str | None, wall: float | None) -> dict:
    print(f"default: {'results in ' + results if results else 'snakemake --cores 2 of config/config.yaml'}; "
          f"{load()}", flush=True)
    peaks, cpu = [matmul_peak()], None
    if results is None:
        with tempfile.TemporaryDirectory(prefix="study_speed.default.") as tmp:
            wall, cpu = run_snakemake(Path(tmp), "--configfile", str(REPO / "config" / "config.yaml"))
            record = study_record(Path(tmp) / "results")
        measured = f"measured here, {cpu:.0f} s of CPU"
    else:
        record = study_record(Path(results))
        measured = "given (--default-wall)" if wall is not None else "not measured"
    peaks.append(matmul_peak())
    peak = statistics.median(peaks)
    ideal = record["flops"] / peak  # seconds on one core at the peak
    result = {**record, "wall_s": wall, "wall": measured, "cpu_s": cpu, "peak_flops_per_core": peak,
              "peaks": peaks,
              "share": ideal / (wall * CORES) if wall else None,
              "train_jobs_share": ideal / record["train_job_s"] if record["train_job_s"] else None}
    print(f"  {record['cells']} cells, {record['flops']:.3e} training FLOPs (sum of C); fp32 peak "
          f"{peak / 1e9:.0f} GFLOP/s per core (2048³ matmul, {peaks[0] / 1e9:.0f} before, "
          f"{peaks[1] / 1e9:.0f} after): "
          f"{ideal:.1f} core-seconds at the peak")
    if wall:
        print(f"  wall {wall:.1f} s ({measured}) × {CORES} cores: the study's training used "
              f"{result['share']:.2%} of the machine")
    else:
        print(f"  wall not measured (pass --default-wall); the outputs' mtimes span "
              f"{record['outputs_span_s']:.0f} s")
    if result["train_jobs_share"]:
        print(f"  the training jobs alone ({record['train_job_s']:.1f} s summed, one thread each): "
              f"{result['train_jobs_share']:.2%} of their core time; {load()}")
    return result


# --- fixed: a cell's fixed cost against a bare `import torch` -------------------------------------

def overhead_child(stamps: str, module: str, argv: list[str]) -> None:
    """``python -m workflow_scripts.train.<module> argv`` (``--overhead-child``), noting when ``import torch``
    ends, the first training step starts, the last optimiser step ends and the process ends itself."""
    import atexit
    import runpy

    times = {"code_start": time.time()}
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    times["torch_imported"] = time.time()

    def before_forward(module, _inputs):
        if type(module).__name__ in ("GPT", "Net") and module.training:  # evaluation runs in eval mode
            times.setdefault("first_step", time.time())

    def after_step(_optimizer, _args, _kwargs):
        times["last_step"] = time.time()

    def write_stamps():
        Path(stamps).write_text(json.dumps(times | {"ending": time.time()}))

    torch.nn.modules.module.register_module_forward_pre_hook(before_forward)
    register_optimizer_step_post_hook(after_step)
    atexit.register(write_stamps)  # a job that runs the interpreter's teardown
    real_exit = os._exit

    def exit_now(status):  # workflow_scripts.jobs.finish skips the teardown, and atexit with it
        write_stamps()
        real_exit(status)

    os._exit = exit_now
    sys.argv = [f"workflow_scripts.train.{module}", *argv]
    runpy.run_module(f"workflow_scripts.train.{module}", run_name="__main__", alter_sys=True)


def tiny_cells(folder: Path) -> dict[str, tuple[str, list[str]]]:
    """A tiny token cell (L1 d16, 32 steps) and a tiny samples cell (sine mlp L1 w2, 5 epochs)."""
    from workflow_scripts.data.samples import prepare_samples

    train_bin = tt.write_tokens(folder, "train", 20_000, 65, 0)
    val_bin = tt.write_tokens(folder, "val", 4_000, 65, 1)
    sine = {"source": "generator", "generator": "sine", "samples": {"train": 64, "val": 32, "test": 32}}
    prepare_samples(sine, folder / "samples")
    token = ["--train-tokens", str(train_bin), "--val-tokens", str(val_bin), "--n-layer", "1",
             "--d-model", "16", "--n-head", "2", "--context", "32", "--tokens", "8192", "--batch-size", "8",
             "--eval-tokens", "1024", "--eval-points", "4"]
    samples = ["--data", str(folder / "samples"), "--family", "mlp", "--n-layer", "1", "--width", "2",
               "--samples", "64", "--epochs", "5", "--batch-size", "0"]
    return {"token cell": ("token_cell", token), "samples cell": ("samples_cell", samples)}


def fixed_part(repeats: int) -> dict:
    print(f"fixed: tiny cells against `python -c 'import torch'`, {repeats} interleaved repeats; {load()}",
          flush=True)
    rows = {name: [] for name in ("token cell", "samples cell", "import torch")}
    with tempfile.TemporaryDirectory(prefix="study_speed.fixed.") as tmp:
        folder = Path(tmp)
        cells = tiny_cells(folder)
        for rep in range(repeats):
            for name in list(rows) if rep % 2 == 0 else list(rows)[::-1]:
                launched = time.time()
                if name == "import torch":
                    subprocess.run([sys.executable, "-c", "import torch"], check=True)
                    rows[name].append({"total": time.time() - launched})
                    continue
                module, argv = cells[name]
                out, stamps = folder / f"{module}{rep}", folder / f"{module}{rep}.json"
                subprocess.run([sys.executable, __file__, "--overhead-child", str(stamps), module, *argv,
                                "--metrics", str(out / "metrics.json"), "--curve", str(out / "curve.csv")],
                               cwd=REPO, check=True, capture_output=True)
                exited = time.time()
                t = json.loads(stamps.read_text())
                written = (out / "metrics.json").stat().st_mtime
                rows[name].append({
                    "total": exited - launched,
                    "start": t["first_step"] - launched,
                    "interpreter": t["code_start"] - launched,
                    "import_torch": t["torch_imported"] - t["code_start"],
                    "training": written - t["first_step"],  # steps, evaluations, the test loss, the writes
                    "teardown": exited - written,
                    "after_ending": exited - t["ending"],
                    "steps": json.loads((out / "metrics.json").read_text())["steps"],
                })
    med = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    bare = med["import torch"]["total"]
    for name in ("token cell", "samples cell"):
        m = med[name]
        m["ratio_to_import_torch"] = m["total"] / bare
        print(f"  {name} ({m['steps']:.0f} steps): {m['total']:.2f} s start to exit = "
              f"start {m['start']:.2f} s "
              f"(interpreter {m['interpreter']:.2f} s, import torch {m['import_torch']:.2f} s, the rest "
              f"{m['start'] - m['interpreter'] - m['import_torch']:.2f} s) + training and writes "
              f"{m['training']:.2f} s + teardown {m['teardown']:.2f} s (metrics.json written to exit); "
              f"{m['ratio_to_import_torch']:.2f}x the bare import")
    print(f"  python -c 'import torch': {bare:.2f} s (medians of {repeats}); {load()}")
    return {"repeats": repeats, **med}


# --- dag: benchmarks/dag_speed.py ----------------------------------------------------------------

def dag_part(cells: int) -> dict:
    print(f"dag: snakemake -n of {cells:,} cells against a trivial workflow (benchmarks/dag_speed.py); "
          f"{load()}", flush=True)
    result = dag_speed.measure(cells)
    print("\n".join("  " + line for line in dag_speed.report(result)) + f"; {load()}")
    return result


def summary(results: dict) -> list[str]:
    lines = ["study_speed summary (2 cores; ratios against peers measured in this run)"]
    if "sine" in results:
        r = results["sine"]
        met = "met" if r["met"] else "not met"
        lines.append(f"  sine: {r['cells']} cells, loop {r['loop_s']:.1f} s, "
                     f"pipeline {r['pipeline_s']:.1f} s, speedup {r['speedup']:.2f}x "
                     f"(target {SPEEDUP_TARGET}x {met})")
    if "default" in results:
        r = results["default"]
        share = f"{r['share']:.2%} of wall x cores" if r["share"] is not None else "wall not measured"
        jobs = f", {r['train_jobs_share']:.2%} of the training jobs' time" if r["train_jobs_share"] else ""
        lines.append(f"  default: {r['cells']} cells, {r['flops']:.3e} FLOPs, {share}{jobs}")
    if "fixed" in results:
        r = results["fixed"]
        lines.append(f"  fixed: token cell {r['token cell']['total']:.2f} s, samples cell "
                     f"{r['samples cell']['total']:.2f} s, import torch {r['import torch']['total']:.2f} s "
                     f"({r['token cell']['ratio_to_import_torch']:.2f}x, "
                     f"{r['samples cell']['ratio_to_import_torch']:.2f}x)")
    if "dag" in results:
        r = results["dag"]
        lines.append(f"  dag: {r['cells']:,} cells {r['grid_wall_s']:.1f} s, "
                     f"trivial {r['trivial_wall_s']:.1f} s "
                     f"({r['ratio_wall']:.2f}x wall, {r['ratio_cpu']:.2f}x CPU)")
    return lines


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown parts {unknown}: expected some of {','.join(PARTS)}")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=parse_parts, default=list(PARTS), help=f"default {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true",
                        help="the test's run: tiny sine study, one repeat, 100 cells")
    parser.add_argument("--skip-default", action="store_true", help="leave out the default study (≈ 6.5 min)")
    parser.add_argument("--default-results", help="read this results folder, not running the default study")
    parser.add_argument("--default-wall", type=float, help="wall seconds of the run that made those results")
    parser.add_argument("--sine-repeats", type=int, default=2, help="runs of loop and pipeline (default 2)")
    parser.add_argument("--fixed-repeats", type=int, default=5, help="interleaved runs of each (default 5)")
    parser.add_argument("--cells", type=int, default=10_000, help="cells of the DAG's grid (default 10,000)")
    parser.add_argument("--json", help="write every number to this file")
    parser.add_argument("--loop-child", help=argparse.SUPPRESS)
    parser.add_argument("--overhead-child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop_child:
        return blog_loop(json.loads(args.loop_child))
    if args.overhead_child:
        return overhead_child(args.overhead_child[0], args.overhead_child[1], args.overhead_child[2:])
    parts = [p for p in args.parts if not (p == "default" and args.skip_default)]
    if args.quick:
        args.sine_repeats, args.fixed_repeats, args.cells = 1, 1, 100
        if "default" in parts and not args.default_results:
            parts.remove("default")
            print("default: skipped in --quick without --default-results")
    print(f"study_speed: parts {','.join(parts)}{' (quick)' if args.quick else ''}, {os.cpu_count()} CPUs, "
          f"{load()}", flush=True)
    results = {}
    t0 = time.perf_counter()
    for part in parts:
        if part == "sine":
            results["sine"] = sine_part(args.quick, args.sine_repeats)
        elif part == "default":
            results["default"] = default_part(args.default_results, args.default_wall)
        elif part == "fixed":
            results["fixed"] = fixed_part(args.fixed_repeats)
        else:
            results["dag"] = dag_part(args.cells)
    print("\n".join(summary(results)))
    print(f"  all parts: {time.perf_counter() - t0:.0f} s; {load()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"quick": args.quick, "parts": results}, indent=1))


if __name__ == "__main__":
    main()
