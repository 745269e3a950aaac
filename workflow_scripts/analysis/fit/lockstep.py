"""scipy's L-BFGS-B, driven for many starts in lockstep, and the OpenBLAS controls it needs.

``lockstep`` runs scipy's own reverse-communication routine (``setulb``, which
``scipy.optimize.minimize(method="L-BFGS-B")`` drives) for every start and gathers the
function evaluations of a round into one batched call; the iterates are those of
``minimize`` from each start (tested in tests/analysis/test_parametric.py). Used by the fit engine
``workflow_scripts.analysis.fit.huber``.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

try:  # scipy's L-BFGS-B routine itself (reverse communication, C since scipy 1.15)
    from scipy.optimize._lbfgsb import setulb
except ImportError:  # pragma: no cover - other scipy versions use the plain loop
    setulb = None


@functools.cache
def openblas_thread_controls() -> tuple:
    """(get, set) thread-count functions of every OpenBLAS loaded in this process (Linux; else none)."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line})
    except OSError:
        return ()
    controls = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("64_", ""):
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            put = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            if get and put:
                controls.append((get, put))
                break
    return tuple(controls)


def bytes_per_start(lx) -> int:
    """Bytes one start takes in a ``batch_objective`` call: its (k, n) and (n,) temporaries."""
    lx = np.asarray(lx)
    k, n = (1, lx.size) if lx.ndim == 1 else lx.shape[-2:]
    return 8 * n * (5 * k + 12)


def lockstep(lx, ly, w, starts, delta: float, options: dict, batch):
    """L-BFGS-B from every start, all in step: each round asks ``batch`` for (f, g) at once.

    ``batch(thetas, lx, ly, w, delta)`` evaluates a (S, p) block of parameters; ``w`` is a
    weight per row or a row of weights per start. Returns (final θ, final objective or inf).
    """
    per_start = w.ndim == 2  # a row of weights per start (one bootstrap resample each)
    n_starts, n = starts.shape
    m, maxls = 10, 20  # scipy's defaults (maxcor, maxls)
    factr, pgtol = options["ftol"] / np.finfo(float).eps, options["gtol"]
    maxiter, maxfun = options["maxiter"], options.get("maxfun", 15000)
    x = [row.copy() for row in starts]
    lower, upper, nbd = np.zeros(n), np.zeros(n), np.zeros(n, np.int32)  # no bounds
    # Per start, the work arrays scipy's driver allocates: wa, iwa, task, lsave, isave, dsave, ln_task.
    state = [(np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m), np.zeros(3 * n, np.int32),
              np.zeros(2, np.int32), np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29),
              np.zeros(2, np.int32)) for _ in range(n_starts)]
    f, g = np.zeros(n_starts), np.zeros((n_starts, n))
    nit, nfev = np.zeros(n_starts, int), np.zeros(n_starts, int)
    pending = range(n_starts)
    while len(pending):
        ask = []
        for i in pending:  # advance each start until it asks for f and g at a new x, or stops
            wa, iwa, task, lsave, isave, dsave, ln_task = state[i]
            while True:
                setulb(m, x[i], lower, upper, nbd, f[i], g[i], factr, pgtol, wa, iwa, task, lsave, isave,
                        dsave, maxls, ln_task)
                if task[0] == 3:  # evaluate f, g at x
                    ask.append(i)
                    break
                if task[0] != 1:  # converged, or stopped
                    break
                nit[i] += 1  # a new iterate: the stopping rules of scipy's driver
                if nit[i] >= maxiter or nfev[i] > maxfun:
                    task[0], task[1] = 5, 504
        if ask:
            f[ask], g[ask] = batch(np.array([x[i] for i in ask]), lx, ly, w[ask] if per_start else w, delta)
            nfev[ask] += 1
        pending = ask
    thetas = np.array(x)
    ok = np.all(np.isfinite(thetas), axis=1) & np.isfinite(f)
    return thetas, np.where(ok, f, np.inf)
