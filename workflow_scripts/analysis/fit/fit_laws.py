"""The entries of fits.json of the laws fitted to final losses: single-variable laws and L(N, D).

Each function returns one law's entry (or a ``skipped`` reason) for ``workflow_scripts.analysis.fit.experiment``:
L(N), L(D), L(C) on the cells ``laws.single_cells`` selects (``workflow_scripts.analysis.fit.power_law``),
and Chinchilla's L(N, D) with the compute-optimal allocation it implies
(``workflow_scripts.analysis.fit.parametric``). Kaplan's forms are ``workflow_scripts.analysis.fit.kaplan``, approach 1
``workflow_scripts.analysis.fit.approach1``.
"""

from __future__ import annotations

from workflow_scripts.analysis.fit import laws
from workflow_scripts.analysis.fit import parametric
from workflow_scripts.analysis.fit.power_law import bootstrap_power_law, fit_power_law


def single_law(law, usable, excluded, experiment, n_boot, seed, level, irreducible=True, n_holdout=1):
    """One single-variable law's entry of fits.json, on the cells ``laws.single_cells`` selects."""
    cells, x_col, selection = laws.single_cells(law, usable)
    form = f"L = {'E + ' if irreducible else ''}A * {law[2]}^-alpha"
    head = {"law": law, "form": form, "x": x_col, "y": "val_loss"}
    if usable.empty:
        return {"law": law, "skipped": f"experiment {experiment!r}, law {law}: no usable cells"}
    n_x, need = cells[x_col].nunique(), 3 if irreducible else 2
    if n_x < need:
        return {"law": law, "skipped": f"experiment {experiment!r}, law {law}: only {n_x} distinct "
                f"{x_col} value(s) among usable cells at {selection} (need {need})"}
    x, y = cells[x_col].to_numpy(float), cells["val_loss"].to_numpy(float)
    fit = fit_power_law(x, y, irreducible=irreducible)
    boot = bootstrap_power_law(x, y, groups=x, n_boot=n_boot, seed=seed, level=level, irreducible=irreducible)
    warnings = []
    if n_x == need:  # a resample keeping `need` distinct x is the full data again
        warnings.append(f"only {need} distinct {x_col} values for {need} parameters: "
                        "the interval understates the uncertainty")
    fit = {**fit, "ci": boot["ci"], "n_bootstrap_failed": boot["n_failed"]}
    entry = laws.law_entry(head, selection, fit, cells, excluded, n_boot, level, warnings,
                           f"distinct {x_col} values")
    entry["extrapolation"] = laws.extrapolation(
        cells, lambda kept: fit_power_law(kept[x_col], kept["val_loss"], irreducible=irreducible)["params"],
        lambda params, held: laws.power_law(params, held[x_col]), n_holdout)
    return entry


def parametric_law(usable, excluded, experiment, n_boot, seed, level, grid=None, n_holdout=1):
    """The L(N,D) entry of fits.json (Hoffmann et al. 2022, Eq. 2) over every usable cell, and
    the compute-optimal allocation it implies (or why it was skipped)."""
    law = "L(N,D)"
    try:
        parametric.check_points(usable["N_nonembedding"], usable["D"], usable["val_loss"])
    except ValueError as why:
        reason = f"experiment {experiment!r}, law {law}: usable cells: {why}"
        return {"law": law, "skipped": reason}, {"law": law, "skipped": reason}
    head = {"law": law, "form": "L = E + A * N^-alpha + B * D^-beta", "x": ["N_nonembedding", "D"],
            "y": "val_loss"}
    fit = parametric.fit_parametric(usable["N_nonembedding"], usable["D"], usable["val_loss"], n_boot=n_boot,
                                    seed=seed, level=level, grid=grid)
    ci = fit.get("ci", {})
    fit = {**fit, "ci": {k: ci.get(k) for k in parametric.PARAMS},
           "n_bootstrap_failed": fit.get("n_bootstrap_failed", 0)}
    entry = laws.law_entry(head, "all usable cells", fit, usable, excluded, n_boot, level, [],
                           "distinct N, D or cells")
    entry["extrapolation"] = laws.extrapolation(
        usable, lambda kept: parametric.fit_parametric(kept["N_nonembedding"], kept["D"], kept["val_loss"],
                                                       grid=grid)["params"],
        lambda params, held: laws.parametric_law(params, held["N_nonembedding"], held["D"]), n_holdout)
    optimal = {"law": law, "form": "N_opt = G * (C/6)^a, D_opt = (C/6)^b / G, C = 6ND",
               **fit["compute_optimal"],
               "ci": {k: ci.get(k) for k in parametric.OPTIMAL}, "ci_level": level}
    return entry, optimal
