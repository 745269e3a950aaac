"""The fit engine on big tables: chunked memory, parallel workers, the screened grid search."""


import numpy as np
import pandas as pd
import pytest

from tests.helpers import SHARED_DATA, SMALL_GRID
from workflow_scripts.analysis.fit import chunks
from workflow_scripts.analysis.fit import huber as hf
from workflow_scripts.analysis.fit.lockstep import bytes_per_start
from workflow_scripts.analysis.fit.parametric import DEFAULT_GRID, NAMES, fit_parametric

MISFITTING = SHARED_DATA / "misfitting_final_runs.csv"
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla_table(n_rows, seed=0, sigma=0.01):
    """N and D log-uniform over three decades, Chinchilla's law, lognormal noise."""
    rng = np.random.default_rng(seed)
    n, d = 10 ** rng.uniform(7, 10, n_rows), 10 ** rng.uniform(9, 12, n_rows)
    c = CHINCHILLA
    loss = c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d ** c["beta"]
    return n, d, loss * np.exp(rng.normal(0, sigma, n_rows))


def assert_same_fit(a, b, rel=0.0):
    for part in ("params", "compute_optimal", "goodness"):
        for key, value in a[part].items():
            assert b[part][key] == pytest.approx(value, rel=rel, abs=0), (part, key)


def test_spans_cover_the_items_within_the_budget():
    assert chunks.spans(10, 3, budget=9) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert chunks.spans(10, 100, budget=9) == [(i, i + 1) for i in range(10)]  # at least one item each
    assert chunks.spans(10, 1, budget=100) == [(0, 10)]
    assert chunks.spans(10, 1, workers=2, budget=100) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert chunks.spans(0, 1) == []


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_workers_is_a_clear_error(workers):
    with pytest.raises(ValueError, match=f"workers must be a whole number >= 1, got {workers!r}"):
        chunks.run_chunks(max, [(0, 1), (1, 2)], None, workers)


def test_chunks_and_workers_do_not_change_the_numbers(monkeypatch):
    """Serial in one chunk, serial in many small chunks, two processes: bitwise the same fit."""
    n, d, loss = chinchilla_table(60)
    groups = np.round(np.log(n))  # coarse groups: resamples draw several rows together
    one = fit_parametric(n, d, loss, groups=groups, n_boot=40, seed=3, grid=SMALL_GRID)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 50_000)  # a few starts or resamples per chunk
    n_starts = len(hf.grid_starts(SMALL_GRID, NAMES)[0])
    assert len(chunks.spans(n_starts, bytes_per_start(np.ones((2, 60))))) > 20
    many = fit_parametric(n, d, loss, groups=groups, n_boot=40, seed=3, grid=SMALL_GRID)
    parallel = fit_parametric(n, d, loss, groups=groups, n_boot=40, seed=3, grid=SMALL_GRID, workers=2)
    for other in (many, parallel):
        assert_same_fit(one, other)
        pd.testing.assert_frame_equal(one["samples"], other["samples"], check_exact=True)
        assert other["ci"] == one["ci"] and other["best_start"] == one["best_start"]


def test_screened_grid_finds_the_full_grids_optimum():
    """3,000 noisy rows: the grid on 300 of them, polished on all, lands where the full grid does."""
    n, d, loss = chinchilla_table(3000, seed=1, sigma=0.02)
    full = fit_parametric(n, d, loss, grid=SMALL_GRID, screen_rows=None)
    screened = fit_parametric(n, d, loss, grid=SMALL_GRID, screen_rows=300)
    assert_same_fit(full, screened, rel=1e-6)
    assert screened["best_start_on_grid_edge"] == full["best_start_on_grid_edge"] is False
    assert screened["params"]["alpha"] == pytest.approx(0.34, abs=0.02)


@pytest.mark.slow  # two fits from the full 4,500-start grid: ~20 s quiet, a minute on a loaded machine
@pytest.mark.skipif(not MISFITTING.is_file(), reason=f"real data {MISFITTING} absent")
def test_screened_grid_on_real_runs_matches_the_full_grid():
    """261 real runs, Hoffmann et al.'s full 4,500-start grid against the grid on 120 of them."""
    runs = pd.read_csv(MISFITTING)
    full = fit_parametric(runs["N"], runs["D"], runs["loss"], grid=DEFAULT_GRID, screen_rows=None)
    screened = fit_parametric(runs["N"], runs["D"], runs["loss"], grid=DEFAULT_GRID, screen_rows=120)
    assert_same_fit(full, screened, rel=1e-6)


def test_screened_bootstrap_runs_on_a_table_above_the_screen():
    n, d, loss = chinchilla_table(400, seed=2)
    fit = fit_parametric(n, d, loss, n_boot=20, seed=0, grid=SMALL_GRID, screen_rows=100, workers=2)
    assert fit["n_bootstrap_failed"] == 0 and len(fit["samples"]) == 20
    lo, hi = fit["ci"]["alpha"]
    assert lo <= fit["params"]["alpha"] <= hi


def test_resample_counts_are_the_row_weights():
    groups = np.repeat(np.arange(7), 3)
    counts, inverse = hf.resample_counts(groups, 30, seed=5)
    assert counts.dtype == np.uint8 and counts.shape == (30, 7) and (counts.sum(axis=1) == 7).all()
    weights = list(hf.resample_weights(groups, 30, seed=5))
    assert all(np.array_equal(w, c[inverse]) for w, c in zip(weights, counts))


def test_resamples_too_big_for_a_chunk_are_polished_alone_on_their_drawn_rows(monkeypatch):
    """Each resample on its own drawn rows: the same intervals to the bootstrap's precision,
    and bitwise the same in one process or two."""
    n, d, loss = chinchilla_table(60)
    together = fit_parametric(n, d, loss, n_boot=30, seed=4, grid=SMALL_GRID)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 10_000)  # below one resample's two runs on 60 rows
    alone = fit_parametric(n, d, loss, n_boot=30, seed=4, grid=SMALL_GRID)
    parallel = fit_parametric(n, d, loss, n_boot=30, seed=4, grid=SMALL_GRID, workers=2)
    pd.testing.assert_frame_equal(alone["samples"], parallel["samples"], check_exact=True)
    # The bootstrap stops at 1e-8 of the objective: G, a ratio of powers, moves ~1e-4 with that.
    pd.testing.assert_frame_equal(alone["samples"], together["samples"], rtol=1e-3)
    for name, (lo, hi) in together["ci"].items():
        assert alone["ci"][name] == pytest.approx([lo, hi], rel=1e-3), name
    assert not alone["samples"].equals(together["samples"])  # another code path, not the same run
