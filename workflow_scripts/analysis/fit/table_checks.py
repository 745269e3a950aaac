"""A table to fit, read and checked before any fitting: one line naming what is wrong.

``read_fit_table`` turns the ways a file can fail to be a table (missing, a directory, empty,
binary, not UTF-8, a header without rows, a column missing or holding a non-positive value)
into one-line errors naming the file. ``check_fit_table`` turns tables that cannot identify
L(N, D) = E + A/N^α + B/D^β (fewer rows or (N, D) cells than parameters, a constant loss,
one N, one D) into one-line errors naming the cause, where a fit would otherwise return
confident nonsense (a constant loss was fitted with α = 13.2 and r² = 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

# How much of the file is inspected for binary content: enough for any header and first rows.
SNIFF_BYTES = 64 * 1024


def _sniff(path: Path) -> None:
    """A one-line error unless ``path`` is a non-empty UTF-8 text file."""
    if not path.exists():
        raise FileNotFoundError(f"table {path} not found; expected a CSV file")
    if path.is_dir():
        raise ValueError(f"table {path} is a directory; expected a CSV file")
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise ValueError(f"table {path} is empty; expected a CSV file with a header row and data rows")
    nul = head.find(b"\0")
    if nul >= 0:
        raise ValueError(f"table {path} is binary (a NUL byte at offset {nul}); expected a CSV text file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if len(head) < SNIFF_BYTES or err.start < len(head) - 3:  # not just a character cut by the sniff
            raise ValueError(f"table {path} is not UTF-8 text (byte 0x{head[err.start]:02x} at offset "
                             f"{err.start}); expected a CSV text file") from None


def read_fit_table(path, columns: dict[str, str]) -> pd.DataFrame:
    """The CSV at ``path`` with each named column (role → column name) present, finite and positive."""
    path = Path(path)
    _sniff(path)
    try:
        table = pd.read_csv(path)
    except UnicodeDecodeError as err:
        raise ValueError(f"table {path} is not UTF-8 text (offset {err.start}); "
                         "expected a CSV text file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"table {path} could not be read as CSV: {reason}") from None
    if table.empty:
        raise ValueError(f"table {path} has a header but no data rows; expected one row per run")
    missing = [f"{column!r} (--{role})" for role, column in columns.items() if column not in table.columns]
    if missing:
        raise ValueError(f"table {path} lacks column{'s' * (len(missing) > 1)} {', '.join(missing)}; "
                         f"its columns are {list(table.columns)}")
    for role, column in columns.items():
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            value = table[column].iloc[bad[0]]
            value = value.item() if hasattr(value, "item") else value  # -1.0, not np.float64(-1.0)
            raise ValueError(f"column {column!r} (--{role}) has value {value!r} in data row {bad[0] + 1} "
                             f"of {path}; expected finite positive numbers")
    return table


def check_fit_table(n, d, loss, n_params: int = 5, names: Sequence[str] = ("N", "D", "loss")) -> None:
    """A one-line ValueError if the points cannot identify a law of ``n_params`` parameters in N and D."""
    n, d, loss = (np.asarray(v, dtype=float).ravel() for v in (n, d, loss))
    n_name, d_name, loss_name = names
    if n.size < n_params:
        raise ValueError(f"the table has {n.size} rows, fewer than the law's {n_params} parameters; "
                         f"need at least {n_params} rows")
    if np.unique(loss).size == 1:
        raise ValueError(f"{loss_name} is constant ({loss[0]:g} in all {loss.size} rows): there is no "
                         "scaling to fit; expected losses that vary with N and D")
    for name, values, other in ((n_name, n, d_name), (d_name, d, n_name)):
        if np.unique(values).size == 1:
            raise ValueError(f"{name} takes one value ({values[0]:g}) in all {values.size} rows: its "
                             f"exponent cannot be fitted; need at least 2 distinct {name} "
                             f"(or fit a law of {other} alone)")
    cells = np.unique(np.column_stack([n, d]), axis=0).shape[0]
    if cells < n_params:
        raise ValueError(f"the table has {cells} distinct ({n_name}, {d_name}) cells, fewer than the law's "
                         f"{n_params} parameters; need at least {n_params}")
