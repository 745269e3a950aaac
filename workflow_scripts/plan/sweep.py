"""Hyperparameter sweeps as a grid axis: an experiment's ``training.sweep`` settings.

Every (model, data, seed) cell of a swept experiment trains once per setting, the product of the
lists given (``settings``). A setting is named like a hive partition, ``lr=x2,beta2=0.99``
(``setting_name``), and the name is a folder of the cell's path
(``results/<experiment>/runs/<model>/<data>/<setting>/<seed>/``). ``lr`` multiplies each size's
own rate (``x2``), ``lr_absolute`` replaces it, the other keys replace training's value
(``cell_training``). Which setting counts is chosen after training, from the losses
(``workflow_scripts.analysis.sweep``).
"""

from __future__ import annotations

import json
from itertools import product

# The swept keys, in the order names list them; lr and lr_absolute both set the peak rate.
KEYS = ("lr", "lr_absolute", "batch_size", "beta2", "weight_decay")
SELECT_MODES = ("per_cell", "per_model")

# A setting's folder, as setting_name writes it; with the seed, the train rules' {seed} wildcard.
SETTING_PATTERN = r"[a-z0-9_]+=x?[0-9.e+-]+(?:,[a-z0-9_]+=x?[0-9.e+-]+)*"
SEED_PATTERN = rf"(?:{SETTING_PATTERN}/)?seed\d+"

Setting = tuple[tuple[str, float], ...]  # ((key, value), ...) in KEYS order; () for an unswept cell


def swept_keys(sweep: dict) -> list[str]:
    return [key for key in KEYS if key in sweep]


def settings(sweep: dict) -> list[Setting]:
    """Every setting of a (validated) sweep, the last key varying fastest; [()] without one."""
    keys = swept_keys(sweep)
    return [tuple(zip(keys, values)) for values in product(*(sweep[k] for k in keys))]


def setting_name(setting: Setting) -> str:
    """``lr=x2,beta2=0.99`` (``x``: a multiple of the size's rate); "" for no setting."""
    return ",".join(f"{'lr' if key == 'lr_absolute' else key}={'x' if key == 'lr' else ''}{value:g}"
                    for key, value in setting)


def cell_training(training: dict, setting: Setting, size_lr: float) -> dict:
    """The training block one cell trains with: the setting applied, ``lr`` resolved to its peak rate
    (``size_lr``, the rate of its size under training.lr_rule, times the multiplier or replaced)."""
    values = {**training, "lr": size_lr}
    for key, value in setting:
        if key == "lr":
            values["lr"] = size_lr * value
        elif key == "lr_absolute":
            values["lr"] = value
        else:
            values[key] = value
    return values


def check_sweep(where: str, exp: dict, samples: bool) -> str | None:
    """The first problem of an experiment's ``training.sweep`` as one line, or None.

    The schema has checked the types and bounds (a multiplier > 0, an unknown key); this adds
    what it cannot say: an empty list, a value twice, lr with lr_absolute, a batch larger than
    a cell's data, batch sizes on an IsoFLOP grid (its D is rounded to whole batches).
    """
    sweep, where = exp["training"]["sweep"], f"{where}.training.sweep"
    for key in swept_keys(sweep):
        values = sweep[key]
        if not values:
            return f"config error: {where}.{key} = []: expected at least one value (or no {key} key)"
        if len(set(values)) < len(values):
            return f"config error: {where}.{key} = {json.dumps(values)}: expected distinct values"
    if "lr" in sweep and "lr_absolute" in sweep:
        return (f"config error: {where}.lr_absolute = {json.dumps(sweep['lr_absolute'])}: expected no "
                "lr_absolute beside lr (multipliers of each size's rate); sweep one of them")
    batches = sweep.get("batch_size", [])
    if batches and exp["compute_budgets"]:
        return (f"config error: {where}.batch_size = {json.dumps(batches)}: expected no batch-size sweep "
                "on an IsoFLOP grid (D = C / 6N is rounded to whole batches of training.batch_size)")
    for batch in batches:
        if samples:
            small = [d for d in exp["data_sizes"] if batch > d]
            unit, data = "samples", batch
        else:
            data = batch * exp["model"]["context"]
            small = [d for d in exp["data_sizes"] if d * exp["training"]["epochs"] < data]
            unit = "tokens (batch_size × context)"
            if batch == 0:
                return f"config error: {where}.batch_size = 0: expected >= 1 for family transformer"
        if small:
            return (f"config error: {where}.batch_size = {batch}: a batch of {data} {unit} is larger "
                    f"than the data of the cells at D = {small[0]}; expected at most the smallest data size")
    return None
