"""Speed and memory of Chinchilla approach 3 with bootstrap intervals, from small to big tables.

Points from L = 1.69 + 406.4/N^0.34 + 410.7/D^0.28 (Hoffmann et al. 2022) with 1% noise, N
and D log-uniform over realistic ranges, the full 4,500-start grid. Each measurement runs in
a fresh process (so its peak memory is its own) and prints rows → seconds of the grid search,
seconds per bootstrap resample, and peak memory of the fit process and of its largest worker:

- ``ours``: the engine as shipped (cache-sized chunks, the grid screened on SCREEN_ROWS rows
  above that size, ``--workers`` processes), at ``--rows`` with ``--bootstrap`` resamples;
  extrapolated (printed so) to ``--target-rows`` with ``--target-bootstrap`` resamples.
- the same at the first ``--rows`` with one worker: the parallel speed-up.
- ``old``: the engine as it was (every start in one lockstep array, the full grid on all
  rows), measured at ``--old-rows`` and extrapolated linearly.
- ``--peer``: the obvious code, ``scipy.optimize.minimize`` from every start with a numerical
  gradient, timed on a sample of starts and extrapolated.

    python benchmarks/fit_speed.py [--rows 1000,3000,10000,30000,100000] [--bootstrap 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from workflow_scripts.analysis.fit import chunks
from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit.parametric import DEFAULT_GRID, NAMES, fit_parametric

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
REPO = Path(__file__).resolve().parents[1]


def draw_points(n_points: int, seed: int = 0, sigma: float = 0.01):
    """N in [1e7, 1e10] parameters, D in [1e9, 1e12] tokens, log-uniform; lognormal noise."""
    rng = np.random.default_rng(seed)
    n = 10 ** rng.uniform(7, 10, n_points)
    d = 10 ** rng.uniform(9, 12, n_points)
    loss = (TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"])
    return n, d, loss * np.exp(rng.normal(0, sigma, n_points))


def cpu_seconds() -> float:
    """CPU time of this process and of its finished workers (each pool is joined when its call ends)."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def timed(name: str, fn, clock: dict):
    """``fn`` adding its wall seconds to clock[name] and its CPU seconds to clock[name + '_cpu']."""
    def run(*args, **kwargs):
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[name] = clock.get(name, 0.0) + time.perf_counter() - t0
            clock[name + "_cpu"] = clock.get(name + "_cpu", 0.0) + cpu_seconds() - c0
    return run


def measure(rows: int, n_boot: int, workers: int, old: bool) -> dict:
    """One fit in this process: seconds of the grid and of the bootstrap, peak memory (MB)."""
    if old:  # the engine before chunking: one array for every start, the full grid on all rows
        chunks.CHUNK_BYTES = chunks.BLOCK_BYTES = 2 ** 62
    clock: dict[str, float] = {}
    hf.fit_grid = timed("grid", hf.fit_grid, clock)
    hf.bootstrap_grid = timed("boot", hf.bootstrap_grid, clock)
    n, d, loss = draw_points(rows)
    fit = fit_parametric(n, d, loss, n_boot=n_boot, workers=workers,
                         screen_rows=None if old else hf.SCREEN_ROWS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rows": rows, "n_boot": n_boot, "workers": workers, "old": old, "grid_s": clock["grid"],
            "grid_cpu": clock["grid_cpu"], "boot_s": clock.get("boot", 0.0),
            "boot_cpu": clock.get("boot_cpu", 0.0),
            "peak_mb": peak, "worker_mb": worker,
            "alpha": fit["params"]["alpha"], "beta": fit["params"]["beta"], "E": fit["params"]["E"]}


def in_child(rows: int, n_boot: int, workers: int, old: bool = False) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", json.dumps([rows, n_boot, workers, old])],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    m = json.loads(out.splitlines()[-1])
    print(f"  {'old' if old else 'ours'} {rows:>7,} rows, {workers} worker(s): grid {m['grid_s']:7.1f} s "
          f"({m['grid_cpu']:.1f} CPU s), {n_boot} resamples {m['boot_s']:6.1f} s "
          f"({m['boot_cpu']:.1f} CPU s), "
          f"peak {m['peak_mb']:6.0f} MB (largest worker {m['worker_mb']:4.0f} MB); "
          f"E={m['E']:.4f} alpha={m['alpha']:.4f} beta={m['beta']:.4f}", flush=True)
    return m


def line(xs, ys):
    """Least-squares intercept and slope (one point: through the origin)."""
    if len(xs) == 1:
        return 0.0, ys[0] / xs[0]
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(intercept), float(slope)


def plain_objective(theta, log_n, log_d, log_loss):
    a, b, alpha, beta, e = theta
    pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
    return huber(hf.HUBER_DELTA, pred - log_loss).sum()


def peer(points: int, n_boot: int, sample_starts: int, ours_s: float) -> None:
    """``minimize`` from a sample of starts on the data and one resample, extrapolated."""
    n, d, loss = draw_points(points)
    starts, _ = hf.grid_starts(DEFAULT_GRID, NAMES)
    sample = starts[np.linspace(0, len(starts) - 1, sample_starts).astype(int)]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for fit in range(2):
        idx = np.arange(n.size) if fit == 0 else rng.integers(0, n.size, n.size)
        for start in sample:
            minimize(plain_objective, start, args=(np.log(n[idx]), np.log(d[idx]), np.log(loss[idx])))
    per_run = (time.perf_counter() - t0) / (2 * len(sample))
    plain = per_run * len(starts) * (1 + n_boot)
    print(f"plain scipy loop, {points} points, every start on every fit: {plain:,.0f} s (extrapolated from "
          f"{len(sample)} starts x 2 fits); ours {ours_s:.1f} s: {plain / ours_s:,.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000,3000,10000,30000,100000", help="table sizes, comma-separated")
    parser.add_argument("--bootstrap", type=int, default=20, help="resamples measured per size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--old-rows", default="300,1000", help="sizes for the old engine (it is slow)")
    parser.add_argument("--target-rows", type=int, default=100_000)
    parser.add_argument("--target-bootstrap", type=int, default=1000)
    parser.add_argument("--peer", action="store_true", help="also time the plain scipy loop (slow)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one))))
        return
    rows = [int(r) for r in args.rows.split(",")]
    old_rows = [int(r) for r in args.old_rows.split(",") if r]
    print(f"fit_speed: approach 3, {len(hf.grid_starts(DEFAULT_GRID, NAMES)[0]):,}-start grid, screen above "
          f"{hf.SCREEN_ROWS:,} rows; {chunks.CHUNK_BYTES >> 20} MB chunks")
    ours = [in_child(r, args.bootstrap, args.workers) for r in rows]
    serial = in_child(rows[0], args.bootstrap, 1)
    old = [in_child(r, 0, 1, old=True) for r in old_rows]

    big = [m for m in ours if m["rows"] > hf.SCREEN_ROWS] or ours
    t, b = args.target_rows, args.target_bootstrap
    sizes = [m["rows"] for m in big]
    for clock in ("", "_cpu"):
        grid0, grid1 = line(sizes, [m["grid" + (clock or "_s")] for m in big])
        # Bootstrap time scaled by b / --bootstrap whole: its fixed part (grid scores) too, so an upper bound.
        boot0, boot1 = line(sizes, [m["boot" + (clock or "_s")] / args.bootstrap for m in big])
        grid, boot = grid0 + grid1 * t, (boot0 + boot1 * t) * b
        print(f"ours at {t:,} rows with {b:,} resamples, {args.workers} workers, extrapolated linearly "
              f"in rows "
              f"and resamples: {'wall' if not clock else 'CPU'} grid {grid:.0f} s + bootstrap {boot:.0f} s = "
              f"{grid + boot:.0f} s ({(grid + boot) / 60:.1f} min)"
              + (f", i.e. {(grid + boot) / 60 / args.workers:.1f} min wall on {args.workers} free cores"
                 if clock else ""))
    mem0, mem1 = line(sizes, [m["peak_mb"] for m in big])
    # Measured with fewer resamples: add the rest's draw counts (1 byte per row) and grid scores.
    extra_mb = (b - args.bootstrap) * (t + 8 * len(hf.grid_starts(DEFAULT_GRID, NAMES)[0])) / 2 ** 20
    print(f"  peak memory {mem0 + mem1 * t + extra_mb:.0f} MB + {args.workers} workers of at most "
          f"{max(m['worker_mb'] for m in ours):.0f} MB")
    first = ours[0]
    print(f"parallel speed-up at {first['rows']:,} rows (wall, on this machine as loaded now): grid "
          f"{serial['grid_s'] / first['grid_s']:.2f}x, bootstrap "
          f"{serial['boot_s'] / max(first['boot_s'], 1e-9):.2f}x with {args.workers} workers; CPU seconds "
          f"parallel/serial {first['grid_cpu'] / serial['grid_cpu']:.2f}, "
          f"{first['boot_cpu'] / max(serial['boot_cpu'], 1e-9):.2f}")
    if old:
        o0, o1 = line([m["rows"] for m in old], [m["grid_s"] for m in old])
        m0, m1 = line([m["rows"] for m in old], [m["peak_mb"] for m in old])
        print(f"old engine at {t:,} rows, grid only (extrapolated linearly): {o0 + o1 * t:,.0f} s, "
              f"peak {(m0 + m1 * t) / 1024:,.1f} GB")
        same = min(ours, key=lambda m: abs(m["rows"] - old[-1]["rows"]))
        if same["rows"] == old[-1]["rows"]:
            print(f"at {same['rows']:,} rows: grid {old[-1]['grid_s'] / same['grid_s']:.1f}x faster, "
                  f"peak memory {old[-1]['peak_mb'] / same['peak_mb']:.1f}x lower than the old engine")
    if args.peer:
        small = in_child(250, args.bootstrap, args.workers)
        peer(250, b, 45, small["grid_s"] + small["boot_s"] * b / args.bootstrap)


if __name__ == "__main__":
    main()
