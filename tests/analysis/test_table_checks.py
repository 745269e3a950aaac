"""Degenerate and unreadable tables: one line naming the file or the cause, before any fitting."""

import numpy as np
import pytest

from workflow_scripts.analysis.fit import table_checks
from workflow_scripts.analysis.fit.table_checks import check_fit_table, read_fit_table

COLUMNS = {"n": "N", "d": "D", "loss": "loss"}
GOOD = "N,D,loss\n1e7,1e9,3.1\n1e8,1e9,2.9\n1e7,1e10,2.8\n1e8,1e10,2.6\n1e9,1e11,2.3\n"


def one_line_error(kind, fn, *args, match, **kwargs):
    with pytest.raises(kind, match=match) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_a_good_table_reads_and_passes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(GOOD)
    table = read_fit_table(path, COLUMNS)
    assert list(table.columns) == ["N", "D", "loss"] and len(table) == 5
    check_fit_table(table["N"], table["D"], table["loss"])


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"  \n\n", "is empty"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", r"is binary \(a NUL byte at offset 8\)"),
    ("N,D,loss\n1e7,1e9,caf\u00e9\n".encode("latin-1"), r"is not UTF-8 text \(byte 0xe9 at offset 20\)"),
    (b"N,D,loss\n", "has a header but no data rows"),
    (b'N,D,loss\n1,2,"3\n', "could not be read as CSV"),
])
def test_unreadable_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "runs.csv"
    path.write_bytes(content)
    message = one_line_error(ValueError, read_fit_table, path, COLUMNS, match=match)
    assert str(path) in message


def test_missing_file_and_directory_name_the_path(tmp_path):
    one_line_error(FileNotFoundError, read_fit_table, tmp_path / "nope.csv", COLUMNS,
                   match=f"table {tmp_path / 'nope.csv'} not found")
    one_line_error(ValueError, read_fit_table, tmp_path, COLUMNS, match=f"table {tmp_path} is a directory")


def test_missing_columns_are_all_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("params,D,val\n1,2,3\n")
    message = one_line_error(ValueError, read_fit_table, path, COLUMNS,
                             match=r"lacks columns 'N' \(--n\), 'loss' \(--loss\)")
    assert "['params', 'D', 'val']" in message


@pytest.mark.parametrize("value, shown", [("-1", "-1.0"), ("abc", "'abc'"), ("inf", "inf")])
def test_bad_values_name_column_row_and_value(tmp_path, value, shown):
    path = tmp_path / "t.csv"
    path.write_text(GOOD.replace("2.6", value))
    one_line_error(ValueError, read_fit_table, path, COLUMNS,
                   match=rf"column 'loss' \(--loss\) has value {shown} in data row 4 of {path}")


def grid_points():
    n, d = np.meshgrid([1e7, 1e8, 1e9], [1e9, 1e10, 1e11])
    n, d = n.ravel(), d.ravel()
    return n, d, 1.7 + 400 / n ** 0.34 + 400 / d ** 0.28


def test_constant_loss_is_an_error():
    n, d, _ = grid_points()
    one_line_error(ValueError, check_fit_table, n, d, np.full(n.size, 2.5),
                   match=r"loss is constant \(2.5 in all 9 rows\)")


@pytest.mark.parametrize("which, name", [(0, "N"), (1, "D")])
def test_one_n_or_one_d_is_an_error(which, name):
    points = list(grid_points())
    points[which] = np.full(points[which].size, 1e8)
    one_line_error(ValueError, check_fit_table, *points,
                   match=rf"{name} takes one value \(1e\+08\) in all 9 rows: its exponent cannot be fitted")


def test_fewer_rows_or_cells_than_parameters_is_an_error():
    n, d, loss = grid_points()
    one_line_error(ValueError, check_fit_table, n[:4], d[:4], loss[:4],
                   match="the table has 4 rows, fewer than the law's 5 parameters")
    # Eight rows but four cells: seeds repeat a cell, they do not add one.
    rows = [0, 1, 3, 4] * 2
    one_line_error(ValueError, check_fit_table, n[rows], d[rows], loss[rows] * np.repeat([1.0, 1.01], 4),
                   match=r"4 distinct \(N, D\) cells, fewer than the law's 5 parameters")


def test_names_are_the_callers_columns():
    n, d, loss = grid_points()
    one_line_error(ValueError, check_fit_table, n, d, np.full(n.size, 2.5), names=("params", "tokens", "val"),
                   match="val is constant")


def test_bad_bytes_past_the_sniffed_head_are_still_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(table_checks, "SNIFF_BYTES", 16)  # the head is clean ASCII, the bad byte later
    path = tmp_path / "t.csv"
    path.write_bytes(GOOD.encode() + "1e9,1e12,caf\u00e9\n".encode("latin-1"))
    one_line_error(ValueError, read_fit_table, path, COLUMNS, match=f"table {path} is not UTF-8 text")
