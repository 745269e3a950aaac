"""What every law's fit reports beside its parameters: percentile intervals over bootstrap
samples, goodness of fit in log space, and the checks of its inputs (positive arrays, level)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd


def percentile_ci(samples: pd.DataFrame, level: float) -> dict[str, list[float] | None]:
    """Percentile interval of each column at ``level``; None for a column without samples."""
    q = 100 * np.array([(1 - level) / 2, (1 + level) / 2])
    ok = samples.replace([np.inf, -np.inf], np.nan)
    return {k: ([float(v) for v in np.nanpercentile(ok[k], q)] if ok[k].notna().any() else None) for k in ok}


def goodness(ly: np.ndarray, pred: np.ndarray, objective_value: float | None) -> dict[str, Any]:
    """Fit quality in log space: rms residual, R², points, the minimised objective."""
    resid = ly - pred
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    return {
        "rmse_log": float(np.sqrt(np.mean(resid ** 2))),
        "r2_log": 1.0 - float((resid ** 2).sum()) / ss_tot if ss_tot > 0 else None,
        "n_points": int(ly.size),
        "huber_objective": objective_value,
    }


def positive_arrays(names: Sequence[str], values: Sequence) -> list[np.ndarray]:
    """Each of ``values`` as a flat float array, all of one length, finite and positive in log space;
    a ValueError naming the first bad value otherwise."""
    arrays = [np.asarray(v, dtype=float).ravel() for v in values]
    if len({a.size for a in arrays}) != 1:
        raise ValueError(f"{', '.join(names)} differ in length ({', '.join(str(a.size) for a in arrays)})")
    for name, array in zip(names, arrays):
        bad = np.flatnonzero(~(np.isfinite(array) & (array > 0)))
        if bad.size:
            raise ValueError(f"{name} has value {array[bad[0]]} at row {bad[0]}; "
                             "expected finite positive numbers")
    return arrays


def check_level(level: float, n_boot: int) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
