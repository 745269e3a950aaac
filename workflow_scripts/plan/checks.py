"""Config checks over the whole tree or a whole grid axis: names, finite numbers, repeated entries.

Each returns the one-line message of the first problem (``config error: <key> = <value>:
expected ...``) or None; workflow_scripts.plan.config.check_config raises it as a ConfigError.
"""

from __future__ import annotations

import json
import math

from workflow_scripts.plan.grid import model_name
from workflow_scripts.plan.names import name_problem

# The tables whose keys become folders under results/ (workflow_scripts.plan.names).
NAMED_TABLES = ("experiments", "datasets", "tokenizers")


def bad_name(config: dict) -> str | None:
    for table in NAMED_TABLES:
        for name in config.get(table, {}):
            problem = name_problem(name)
            if problem:
                return f"config error: {table}.{name!r}: {problem}"
    return None


def non_finite(value, where: str = "") -> str | None:
    """The first NaN or ±inf in the config (YAML's .nan, .inf): JSON Schema lets them through."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"config error: {where or '<top level>'} = {value}: expected a finite number"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        problem = non_finite(item, f"{where}.{key}" if where else str(key))
        if problem:
            return problem
    return None


def repeated_entry(name: str, exp: dict) -> str | None:
    """Two models of one shape, or a data size or seed given twice: each would be one cell, and
    all but one entry silently lost (e.g. a second lr for the same shape)."""
    where, family = f"experiments.{name}", exp["model"]["family"]
    seen: dict[str, int] = {}
    for i, size in enumerate(exp["models"]):
        shape = model_name(size, family)
        if shape in seen:
            first = exp["models"][seen[shape]]
            return (f"config error: {where}.models.{i} = {json.dumps(size)}: the shape {shape} of models.{seen[shape]} "
                    f"= {json.dumps(first)} again: expected each shape once (another lr for the same shape "
                    "belongs in another experiment)")
        seen[shape] = i
    for key in ("data_sizes", "seeds"):
        values = exp[key]
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            return (f"config error: {where}.{key} = {json.dumps(values)}: expected distinct entries "
                    f"({', '.join(map(str, repeated))} repeated; each is one cell)")
    return None
