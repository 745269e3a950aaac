"""Speed of Chinchilla approach 3 with bootstrap intervals, against a plain scipy loop.

250 points from L = 1.69 + 406.4/N^0.34 + 410.7/D^0.28 (Hoffmann et al. 2022) with 1% noise,
N and D log-uniform over realistic ranges; the full 4,500-start grid on the data and 1,000
bootstrap resamples. The peer, measured in the same run, is the obvious code: for every fit
(the data and each resample) ``scipy.optimize.minimize`` from every grid start with its
default method and a numerical gradient on the plain summed Huber objective. It is far too
slow to run whole, so a sample of starts is timed on a few fits and extrapolated (printed so).

    python benchmarks/fit_speed.py [--points 250] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit.parametric import DEFAULT_GRID, NAMES, fit_parametric

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def draw_points(n_points: int, seed: int = 0, sigma: float = 0.01):
    """N in [1e7, 1e10] parameters, D in [1e9, 1e12] tokens, log-uniform; lognormal noise."""
    rng = np.random.default_rng(seed)
    n = 10 ** rng.uniform(7, 10, n_points)
    d = 10 ** rng.uniform(9, 12, n_points)
    loss = (TRUE["E"] + TRUE["A"] / n ** TRUE["alpha"] + TRUE["B"] / d ** TRUE["beta"])
    return n, d, loss * np.exp(rng.normal(0, sigma, n_points))


def plain_objective(theta, log_n, log_d, log_loss):
    a, b, alpha, beta, e = theta
    pred = logsumexp([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)], axis=0)
    return huber(hf.HUBER_DELTA, pred - log_loss).sum()


def plain_loop_seconds(n, d, loss, starts, n_fits: int, seed: int = 0) -> float:
    """Seconds of minimize() from every start in ``starts`` on ``n_fits`` fits (the data, then resamples)."""
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for fit in range(n_fits):
        idx = np.arange(n.size) if fit == 0 else rng.integers(0, n.size, n.size)
        args = (np.log(n[idx]), np.log(d[idx]), np.log(loss[idx]))
        for start in starts:
            minimize(plain_objective, start, args=args)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=250)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--sample-starts", type=int, default=45, help="grid starts timed for the plain loop")
    parser.add_argument("--sample-fits", type=int, default=2, help="fits timed for the plain loop")
    args = parser.parse_args()
    n, d, loss = draw_points(args.points)
    starts, _ = hf.grid_starts(DEFAULT_GRID, NAMES)
    print(f"fit_speed: approach 3, {args.points} points, {len(starts):,}-start grid, "
          f"{args.bootstrap:,} bootstrap resamples")

    t0 = time.perf_counter()
    fit = fit_parametric(n, d, loss, n_boot=args.bootstrap, seed=0)
    ours = time.perf_counter() - t0
    p, ci = fit["params"], fit["ci"]
    print("  fitted: " + ", ".join(f"{k}={p[k]:.4g} [{ci[k][0]:.4g}, {ci[k][1]:.4g}]" for k in p)
          + f" (true {TRUE}); best start on grid edge: {fit['best_start_on_grid_edge']}")
    print(f"ours (lockstep scipy L-BFGS-B, analytic gradient, every start on the data, "
          f"2 polished per resample): {ours:.1f} s")

    sample = starts[np.linspace(0, len(starts) - 1, args.sample_starts).astype(int)]
    measured = plain_loop_seconds(n, d, loss, sample, args.sample_fits)
    total_runs = len(starts) * (1 + args.bootstrap)
    plain = measured / (len(sample) * args.sample_fits) * total_runs
    print(f"plain scipy loop (minimize default method, numerical gradient, every start on every fit): "
          f"{len(sample)} starts x {args.sample_fits} fits took {measured:.1f} s; extrapolated to "
          f"{len(starts):,} starts x {1 + args.bootstrap:,} fits: {plain:,.0f} s "
          f"({plain / 3600:,.1f} h, extrapolated)")
    # Like for like: the plain loop doing only the work ours does (every start on the data,
    # the same starts per resample), so the ratio shows the engine apart from the strategy.
    same_work = measured / (len(sample) * args.sample_fits) * (len(starts) + 2 * args.bootstrap)
    print(f"plain scipy loop doing our work ({len(starts):,} + 2 x {args.bootstrap:,} runs): "
          f"{same_work:,.0f} s (extrapolated); speedup {same_work / ours:,.1f}x")
    print(f"speedup vs plain scipy loop: {plain / ours:,.1f}x")


if __name__ == "__main__":
    main()
