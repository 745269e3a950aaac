"""The fitting engine shared by every law: sums of power laws in logsumexp form.

A law L = E + Σ_j A_j·x_j^(−α_j) is fitted as log L̂ = logsumexp(a_j − α_j log x_j, e)
(A_j = exp a_j, E = exp e) by minimising the summed Huber loss (δ = 1e-3) of log L̂ − log L
with L-BFGS-B from every start of a grid, as in Hoffmann et al. (2022, §3.3, App. D.2) and
its replication by Besiroglu et al. (Epoch AI, 2024). θ is laid out (a_1..a_k, α_1..α_k, e).

Bootstrap resamples are expressed as integer weights on the rows (how often each row was
drawn), which gives the same objective as duplicating rows at a fraction of the cost, and
makes the objective of every grid start on a resample one matrix-vector product. Other laws
(Kaplan's L(N, D)) bring their own objective and prediction as a ``Form``.

Big tables: every lockstep round, grid score and bootstrap polish runs in chunks of bounded
memory (``workflow_scripts.analysis.fit.chunks``), in ``workers`` processes if asked, with
the same numbers either way. Above SCREEN_ROWS rows the grid is searched on a fixed random
subsample of SCREEN_ROWS rows and its best SCREEN_OPTIMA distinct optima are polished on
all rows, which keeps the time linear in rows (tested against the full grid).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
from scipy.optimize import minimize

from workflow_scripts.analysis.fit import chunks
from workflow_scripts.analysis.fit.chunks import run_chunks, spans
from workflow_scripts.analysis.fit.lockstep import bytes_per_start, lockstep, openblas_thread_controls, setulb

HUBER_DELTA = 1e-3
# With δ = 1e-3 the summed Huber objective is ~1e-5, far below L-BFGS-B's default ftol
# (relative to max(|f|, 1)), which would stop it early; these tolerances let it converge.
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000}
# Starts ending within this distance of the best objective count as reaching it (the
# absolute floor, ~1e-6 rms log residual, covers exact data where the optimum is ~0).
TIE_RTOL, TIE_ATOL = 1e-6, 1e-12
_BASIN_RTOL = 1e-3
# A resample needs its optimum to a relative precision far finer than the interval's width,
# not the exact run's: stop when a step gains less than this fraction of the objective.
BOOTSTRAP_RTOL = 1e-8
# Tables with more rows search the grid on a subsample of this many rows (fixed seed) and
# polish the subsample's best distinct optima on all rows: the full grid costs
# 4,500 starts × ~140 evaluations × rows, which at 100,000 rows is hours.
SCREEN_ROWS, SCREEN_OPTIMA, SCREEN_SEED = 500, 8, 0


def bootstrap_options(objective_value: float, rtol: float) -> dict[str, float]:
    """L-BFGS-B options stopping at relative precision ``rtol`` of an objective near ``objective_value``."""
    # L-BFGS-B's ftol is relative to max(|f|, 1): for f ≪ 1 it is absolute, so scale it by f.
    return {**LBFGS_OPTIONS, "ftol": max(rtol * objective_value, LBFGS_OPTIONS["ftol"])}


def huber(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber(r) elementwise and its derivative clip(r, −δ, δ); Huber = c·(r − c/2) on both branches."""
    c = np.minimum(np.maximum(r, -delta), delta)  # np.clip costs several times more on small arrays
    return c * (r - 0.5 * c), c


def predict(theta: np.ndarray, lx: np.ndarray) -> np.ndarray:
    """log L̂ for inputs lx (k, n) = log x; θ = (a_1..a_k, α_1..α_k, e)."""
    k = lx.shape[0]
    pred = np.full(lx.shape[1], float(theta[2 * k]))
    for j in range(k):
        pred = np.logaddexp(pred, theta[j] - theta[k + j] * lx[j])
    return pred


def batch_objective(thetas: np.ndarray, lx: np.ndarray, ly: np.ndarray, w, delta: float):
    """Σ w_i·Huber(log L̂_i − log y_i) and its analytic gradient for each row of ``thetas`` (S, 2k+1).

    lx is (k, n) = log x, w a weight per row or 1. One call evaluates every start of a grid:
    on tens to hundreds of points numpy's per-call overhead, not the arithmetic, is the cost.
    """
    k = lx.shape[0]
    e = thetas[:, 2 * k, None]  # (S, 1)
    z = thetas[:, :k, None] - thetas[:, k:2 * k, None] * lx  # (S, k, n): a_j − α_j log x_j
    top = np.maximum(z.max(axis=1), e)  # (S, n): shift for a stable logsumexp
    p = np.exp(z - top[:, None, :])  # (S, k, n)
    pe = np.exp(e - top)  # (S, n)
    s = p.sum(axis=1) + pe
    r = top + np.log(s) - ly
    h, c = huber(r, delta)
    cw = c * w / s  # Huber derivative / Σ: with p, pe it gives the softmax weights ∂ log L̂ / ∂ term
    grad = np.empty(thetas.shape)
    pcw = p * cw[:, None, :]  # (S, k, n); elementwise, not einsum: BLAS threads only cost here
    grad[:, :k] = pcw.sum(axis=2)
    grad[:, k:2 * k] = -(pcw * lx).sum(axis=2)
    grad[:, 2 * k] = (pe * cw).sum(axis=1)
    return (h * w).sum(axis=1), grad


def objective(theta: np.ndarray, lx: np.ndarray, ly: np.ndarray, w, delta: float, batch=batch_objective):
    """The objective and gradient at one θ (see ``batch_objective``), as scipy.optimize wants them."""
    f, g = batch(np.asarray(theta, dtype=float)[None, :], lx, ly, w, delta)
    return float(f[0]), g[0]


class Form(NamedTuple):
    """A law other than a sum of power laws: its batched objective and its log L̂ (same signatures)."""
    batch: Callable = batch_objective
    predict: Callable = predict


SUM_OF_POWERS = Form()


def grid_starts(grid: dict[str, Sequence[float]], names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Starts as rows ordered like ``names`` (θ's layout) and whether each lies on the grid's edge."""
    try:
        axes = [np.asarray(grid[k], dtype=float) for k in names]
    except KeyError as missing:
        raise ValueError(f"fit grid needs keys {', '.join(names)}; missing {missing}") from None
    if any(ax.size == 0 for ax in axes):
        raise ValueError("fit grid has an empty axis")
    starts = np.array(list(itertools.product(*axes)))
    edge = np.zeros(len(starts), dtype=bool)
    for j, ax in enumerate(axes):
        if ax.size > 1:  # a single value is no range, so no edge
            edge |= (starts[:, j] == ax.min()) | (starts[:, j] == ax.max())
    return starts, edge


@contextlib.contextmanager
def one_blas_thread():
    """OpenBLAS on one thread inside the block, restored after.

    scipy's L-BFGS-B routine calls BLAS on vectors of five numbers; with OpenBLAS free to
    use every core, the fit of the default study ran 10x slower (measured on 2 cores).
    """
    controls = openblas_thread_controls()
    before = [get() for get, _ in controls]
    for _, put in controls:
        put(1)
    try:
        yield
    finally:
        for (_, put), n in zip(controls, before):
            put(n)


def multistart(lx, ly, w, starts: np.ndarray, delta: float = HUBER_DELTA, options: dict | None = None,
               form: Form = SUM_OF_POWERS, workers: int = 1):
    """L-BFGS-B from every start; return (final θ per start, final objective per start).

    Runs scipy's own L-BFGS-B routine (the reverse-communication ``setulb`` that
    ``scipy.optimize.minimize`` drives) for all starts of a chunk in lockstep, so each round
    of function evaluations is one vectorised ``batch_objective`` call. The iterates are
    those of ``minimize(..., method="L-BFGS-B")`` from each start (tested); it is several
    times faster because the per-call overheads are paid once per round, not per start.
    Chunks of starts bound the memory; ``workers`` processes run them in parallel.
    """
    options = {**LBFGS_OPTIONS, **(options or {})}
    starts = np.asarray(starts, dtype=float)
    w = np.asarray(w, dtype=float)
    per_start = bytes_per_start(lx) + (8 * w.shape[-1] if w.ndim == 2 else 0)
    parts = run_chunks(_multistart_chunk, spans(len(starts), per_start, workers),
                       (lx, ly, w, starts, delta, options, form.batch), workers)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _polish(lx, ly, w, starts, delta, options, batch):
    with one_blas_thread():
        if setulb is None:  # another scipy: the plain loop
            return _multistart_loop(lx, ly, w, starts, delta, options, batch)
        return lockstep(lx, ly, w, starts, delta, options, batch)


def _multistart_chunk(payload, lo: int, hi: int):
    lx, ly, w, starts, delta, options, batch = payload
    return _polish(lx, ly, w[lo:hi] if w.ndim == 2 else w, starts[lo:hi], delta, options, batch)


def _multistart_loop(lx, ly, w, starts: np.ndarray, delta: float, options: dict, batch=batch_objective):
    w = np.asarray(w, dtype=float)
    thetas = np.empty_like(starts)
    losses = np.empty(len(starts))
    for i, start in enumerate(starts):
        res = minimize(objective, start, args=(lx, ly, w[i] if w.ndim == 2 else w, delta, batch), jac=True,
                       method="L-BFGS-B", options=options)
        thetas[i] = res.x
        losses[i] = res.fun if np.all(np.isfinite(res.x)) and np.isfinite(res.fun) else np.inf
    return thetas, losses


def fit_grid(lx, ly, starts: np.ndarray, edge: np.ndarray, delta: float = HUBER_DELTA,
             form: Form = SUM_OF_POWERS, workers: int = 1,
             screen_rows: int | None = SCREEN_ROWS) -> dict[str, Any]:
    """The exact fit: every start polished on the data, the best optimum kept.

    ``start`` is the index of the start reported as the best one: an interior start that
    reached the best optimum if any did, so ``on_edge`` means no interior start got there.
    With more than ``screen_rows`` rows the grid runs on a subsample (see ``screened_fit``).
    """
    if screen_rows is not None and ly.size > screen_rows:
        return screened_fit(lx, ly, starts, edge, delta, form, workers, screen_rows)
    thetas, losses = multistart(lx, ly, 1.0, starts, delta, form=form, workers=workers)
    best = _best(losses)
    reached = losses <= losses[best] + max(TIE_RTOL * losses[best], TIE_ATOL)
    start = int(np.flatnonzero(reached & ~edge)[0]) if np.any(reached & ~edge) else best
    return {"theta": thetas[best], "objective": float(losses[best]), "start": start,
            "on_edge": bool(edge[start]), "thetas": thetas, "losses": losses}


def _best(losses: np.ndarray) -> int:
    best = int(np.argmin(losses))
    if not np.isfinite(losses[best]):
        raise ValueError("the fit did not converge from any start of the grid")
    return best


def screened_fit(lx, ly, starts, edge, delta: float = HUBER_DELTA, form: Form = SUM_OF_POWERS,
                 workers: int = 1, screen_rows: int = SCREEN_ROWS) -> dict[str, Any]:
    """``fit_grid`` for a big table: the grid on ``screen_rows`` random rows, then the
    subsample's SCREEN_OPTIMA best distinct optima polished on all rows, the best kept.

    ``thetas`` and ``losses`` are those polished optima on all rows; ``start`` is the first
    interior grid start that reached, on the subsample, the optimum that won on all rows;
    ``screen`` the subsample's rows, on which the bootstrap also scores the grid.
    """
    rows = np.sort(np.random.default_rng(SCREEN_SEED).choice(ly.size, screen_rows, replace=False))
    lx = np.asarray(lx)
    sub_thetas, sub_losses = multistart(lx[..., rows], ly[rows], 1.0, starts, delta, form=form,
                                        workers=workers)
    _best(sub_losses)
    picked = distinct_indices(sub_thetas, sub_losses, SCREEN_OPTIMA)
    thetas, losses = multistart(lx, ly, 1.0, sub_thetas[picked], delta, form=form, workers=workers)
    best = _best(losses)
    # Several optima of the subsample may polish to one optimum of all rows: take the
    # subsample's best of those, not the one that float noise favours.
    best = int(np.flatnonzero(losses <= losses[best] + max(TIE_RTOL * losses[best], TIE_ATOL))[0])
    origin = sub_losses[picked[best]]
    reached = np.abs(sub_losses - origin) <= max(TIE_RTOL * origin, TIE_ATOL)
    start = int(np.flatnonzero(reached & ~edge)[0]) if np.any(reached & ~edge) else int(picked[best])
    return {"theta": thetas[best], "objective": float(losses[best]), "start": start,
            "on_edge": bool(edge[start]), "thetas": thetas, "losses": losses, "screen": rows}


def distinct_indices(thetas: np.ndarray, losses: np.ndarray, k: int) -> np.ndarray:
    """Indices of the best optimum and up to k − 1 other local optima (worse basins), best first.

    Ends within 0.1% of the best are taken as points of the same flat valley, where
    L-BFGS-B stops short, not as other basins: restarting from them would only cost time.
    """
    order = np.argsort(losses, kind="stable")
    best = losses[order[0]]
    picked = [order[0]]
    for i in order[1:]:
        if len(picked) == k or not np.isfinite(losses[i]):
            break
        if losses[i] > best * (1 + _BASIN_RTOL) + TIE_ATOL and all(
                np.max(np.abs(thetas[i] - thetas[p])) > 1e-2 for p in picked):
            picked.append(i)
    return np.array(picked)


def group_index(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Group number of each row (rows equal in every column of ``groups`` share one) and the count."""
    groups = np.asarray(groups)
    _, inverse = np.unique(groups.reshape(len(groups), -1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return inverse, int(inverse.max()) + 1 if inverse.size else 0


def resample_counts(groups, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """How many times each group is drawn per resample (n_boot, groups), groups drawn with
    replacement, and the group of each row; row weights are ``counts[r][inverse]``."""
    inverse, n_groups = group_index(groups)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, n_groups), np.uint8)  # the smallest type that holds the draws
    for r in range(n_boot):
        drawn = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        if drawn.max(initial=0) > np.iinfo(counts.dtype).max:
            counts = counts.astype(np.min_scalar_type(drawn.max()))
        counts[r] = drawn
    return counts, inverse


def resample_weights(groups, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Per resample, how many times each row is drawn: groups drawn with replacement, whole."""
    counts, inverse = resample_counts(groups, n_boot, seed)
    for row in counts:
        yield row[inverse].astype(float)


def bootstrap_grid(lx, ly, groups, starts, full: dict[str, Any], n_boot: int, seed: int,
                   valid: Callable[[np.ndarray], bool], delta: float = HUBER_DELTA, n_polish: int = 1,
                   n_basins: int = 1, rtol: float | None = BOOTSTRAP_RTOL,
                   form: Form = SUM_OF_POWERS, workers: int = 1) -> tuple[np.ndarray, int]:
    """θ refitted on each resample; returns (θ per usable resample, number that failed).

    Each resample is polished from the ``n_basins`` distinct optima of the exact full-data
    fit ``full`` and from the ``n_polish`` grid starts with the lowest objective on that
    resample (on the rows of ``full["screen"]`` if the fit was screened); the grid's
    objectives are products of the resample weights with matrices of per-point Huber losses
    at the starts. Resamples are polished in lockstep, in chunks of bounded memory, in
    ``workers`` processes. ``valid(mask)`` says whether the points drawn can identify the law.
    """
    counts, inverse = resample_counts(groups, n_boot, seed)
    usable = np.array([valid(row[inverse] > 0) for row in counts], dtype=bool).reshape(n_boot)
    counts = counts[usable]
    if not len(counts):
        return np.empty((0, starts.shape[1])), n_boot
    seeds = full["thetas"][distinct_indices(full["thetas"], full["losses"], n_basins)]
    per_resample = np.broadcast_to(seeds, (len(counts), *seeds.shape))
    n_polish = min(n_polish, len(starts))
    if n_polish:  # a screened fit scores the grid on its subsample, as it searched it there
        rows = full.get("screen", slice(None))
        scores = grid_scores(np.asarray(lx)[..., rows], ly[rows], starts, counts, inverse[rows], delta, form,
                             workers)  # (resamples, starts)
        top = np.argpartition(scores, n_polish - 1, axis=1)[:, :n_polish]
        per_resample = np.concatenate([per_resample, starts[top]], axis=1)
    n_each = per_resample.shape[1]
    options = LBFGS_OPTIONS if rtol is None else bootstrap_options(full["objective"], rtol)
    per_item = n_each * (bytes_per_start(lx) + 8 * ly.size)
    # A resample too big for a chunk is polished alone on the rows it drew (a third of the
    # rows have weight 0): the same numbers whatever the chunking, a third less work.
    alone = per_item > chunks.CHUNK_BYTES
    parts = run_chunks(_bootstrap_chunk, spans(len(counts), per_item, workers),
                       (lx, ly, counts, inverse, per_resample, delta, {**LBFGS_OPTIONS, **options},
                        form.batch, alone), workers)
    thetas, losses = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    losses = losses.reshape(len(counts), n_each)
    best = np.argmin(losses, axis=1)
    ok = np.isfinite(losses[np.arange(len(counts)), best])
    thetas = thetas.reshape(len(counts), n_each, -1)[np.arange(len(counts)), best][ok]
    return thetas, n_boot - int(ok.sum())


def _bootstrap_chunk(payload, lo: int, hi: int):
    """Resamples lo..hi polished from their starts, the row weights built here, not kept whole."""
    lx, ly, counts, inverse, per_resample, delta, options, batch, alone = payload
    n_each, n_params = per_resample.shape[1:]
    starts = per_resample[lo:hi].reshape(-1, n_params)
    if alone:  # spans gives one resample per chunk here
        w = counts[lo][inverse].astype(float)
        drawn = w > 0
        return _polish(np.asarray(lx)[..., drawn], ly[drawn], w[drawn], starts, delta, options, batch)
    w = np.repeat(counts[lo:hi][:, inverse].astype(float), n_each, axis=0)
    return _polish(lx, ly, w, starts, delta, options, batch)


def grid_scores(lx, ly, starts, counts, inverse, delta: float = HUBER_DELTA, form: Form = SUM_OF_POWERS,
                workers: int = 1) -> np.ndarray:
    """The objective of every grid start on every resample (resamples, starts), in blocks of
    bounded memory (of starts, then of resamples), the blocks of starts in ``workers`` processes."""
    parts = run_chunks(_scores_chunk, spans(len(starts), 8 * ly.size, workers, chunks.BLOCK_BYTES),
                       (lx, ly, starts, counts, inverse, delta, form.predict), workers)
    return np.concatenate(parts, axis=1)


def _scores_chunk(payload, lo: int, hi: int) -> np.ndarray:
    lx, ly, starts, counts, inverse, delta, predict_fn = payload
    per_point = np.array([huber(predict_fn(s, lx) - ly, delta)[0] for s in starts[lo:hi]])  # (starts, points)
    scores = np.empty((len(counts), hi - lo))
    for r0, r1 in spans(len(counts), 8 * ly.size, budget=chunks.BLOCK_BYTES):
        scores[r0:r1] = counts[r0:r1][:, inverse].astype(float) @ per_point.T
    return scores
