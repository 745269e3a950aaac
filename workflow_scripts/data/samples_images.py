"""Image tables as samples: 28×28 greyscale images and integer labels (MNIST and the like).

Read through ``datasets`` by the same loaders as text tables
(``structured.load_files`` for local parquet/arrow/json files,
``structured.load_hub_split`` for a pinned hub dataset such as ylecun/mnist),
decoded by its ``Image`` feature (PIL), and written in batches into
``numpy.lib.format.open_memmap`` files, so memory stays flat whatever the size.
A split the source lacks is cut from the end of its train split by the
``split`` fractions (contiguous, deterministic), as for text.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap

from workflow_scripts.data import samples_files
from workflow_scripts.data import sources
from workflow_scripts.data import structured
from workflow_scripts.plan import local_files

IMAGE_SHAPE = (28, 28)
_BATCH_ROWS = 1024


def prepare_images(spec: dict, out_dir: str | os.PathLike) -> dict:
    """Write the nine samples files of an image table; return the train meta."""
    image, label = spec["image_column"], spec.get("label_column", "label")
    if spec.get("streaming"):
        # Splits are cut by row counts, which a stream does not know in advance.
        raise ValueError(
            f"dataset streaming = true with image_column {image!r}: expected false for image tables"
        )
    tables, record = _open_tables(spec, f"image_column: {image!r}")
    where = record.pop("where")
    for name, table in {id(t): (n, t) for n, (t, _, _) in tables.items()}.values():  # each table once
        _check_columns(table, spec, where=f"{where} split {name!r}")
    ranges = _sample_ranges(tables, samples_files.sample_counts(spec, {}), record["splits"], where)
    declared = _declared_classes(tables["train"][0], label)
    largest = -1
    with samples_files.staged(out_dir) as paths:
        for split, (table, start, stop) in ranges.items():
            at = f"{where} split {split!r}"
            top = _write_split(table, start, stop, image, label, paths[split, "x"], paths[split, "y"], at)
            if declared is not None and top >= declared:
                raise ValueError(
                    f"{at}: label_column {label!r} holds {top}: expected class ids below the "
                    f"{declared} classes the column declares"
                )
            largest = max(largest, top)
    used = {s: [a, b] for s, (_, a, b) in ranges.items()}
    info = {
        "task": "classification",
        "x_scale": 1 / 255,  # uint8 pixels; models divide by 255
        # Classes: those the label feature declares (ClassLabel), else the largest id seen + 1.
        "n_classes": int(declared if declared is not None else largest + 1),
        "optimal_loss": None,
        "source": {**record, "image_column": image, "label_column": label, "rows_used": used},
    }
    return samples_files.write_metas(out_dir, {s: b - a for s, (a, b) in used.items()}, info, spec)


def _sample_ranges(tables: dict, counts: dict[str, int], splits: dict, where: str) -> dict:
    """The rows each split keeps: its first ``counts[split]`` (0: all); one line if too few."""
    ranges = {}
    for split, (table, start, stop) in tables.items():
        available = stop - start
        asked = counts[split] or available
        if available == 0:
            how = splits[split]
            how = (
                f"split.{split} = {how['fraction']} of {how['source_rows']} rows"
                if how["cut_from_train"]
                else "the source's split has no rows"
            )
            raise ValueError(
                f"{where}: split {split!r} is empty ({how}): "
                "expected at least one row (more data, or a larger split fraction)"
            )
        if asked > available:
            raise ValueError(
                f"{where}: samples.{split} = {asked} exceeds the {available} rows of split "
                f"{split!r} by {asked - available}"
            )
        ranges[split] = (table, start, start + asked)
    return ranges


def _open_tables(spec: dict, hint: str) -> tuple[dict[str, tuple[Any, int, int]], dict]:
    """Each split as (table, first row, end row), and a record of what was read."""
    source = spec.get("source")
    if source == "local":
        paths = local_files.resolve_paths(spec.get("path", ""))
        fmt = local_files.file_format(paths, spec.get("format", "auto"))
        if fmt == "text":
            raise ValueError(
                f"dataset path = {spec.get('path')!r}: text files with image_column "
                f"{spec['image_column']!r}: expected parquet, arrow or json tables"
            )
        loaded = {"train": structured.load_files(paths, fmt)}
        record = {"source": "local", "format": fmt, "files": structured.describe_files(paths),
                  "where": f"dataset path = {spec.get('path')!r}"}
    else:
        hf, names = structured.hub_splits(spec)
        loaded = {s: structured.load_hub_split(spec, name, hint) for s, name in names.items() if name}
        record = {"source": "hf", "hf": {**hf, "splits": names}, "where": f"dataset hf {hf['id']!r}"}
    tables = {s: (t, 0, t.num_rows) for s, t in loaded.items()}
    tables, record["splits"] = cut_from_train(tables, spec.get("split", {}))
    return tables, record


def cut_from_train(tables: dict, fractions: dict) -> tuple[dict, dict[str, dict]]:
    """Each of val and test the source lacks: a contiguous fraction of train's rows cut from its end.

    Returns each split as (table, first row, end row), and a record of where it came from.
    """
    missing, fractions = sources.missing_splits(tables, fractions)
    table, _, n = tables["train"]
    bounds = sources.cut_bounds(n, missing, fractions)
    out = {**tables, **{name: (table, start, end) for name, (start, end) in bounds.items()}}
    record = {
        s: {"rows": [out[s][1], out[s][2]], "source_rows": tables["train" if s in missing else s][2],
            "cut_from_train": s in missing, "fraction": fractions[s] if s in missing else None}
        for s in samples_files.SPLITS
    }
    return {s: out[s] for s in samples_files.SPLITS}, record


def _check_columns(table, spec: dict, where: str) -> None:
    for key, default in (("image_column", ""), ("label_column", "label")):
        column = spec.get(key, default)
        if column not in table.column_names:
            raise ValueError(f"{where}: {key} {column!r} is absent: expected one of {table.column_names}")


def _declared_classes(table, label: str) -> int | None:
    import datasets

    feature = table.features[label]
    return feature.num_classes if isinstance(feature, datasets.ClassLabel) else None


def _write_split(table, start: int, stop: int, image: str, label: str, x_path, y_path, where: str) -> int:
    """Decode rows [start, stop) into the split's staged files; return the largest label."""
    import datasets

    rows = table.select(range(start, stop)).select_columns([image, label])
    if not isinstance(rows.features[image], datasets.Image):
        try:
            rows = rows.cast_column(image, datasets.Image())
        except Exception:
            raise ValueError(
                f"{where}: image_column {image!r} holds {rows.features[image]}: expected images"
            ) from None
    n = stop - start
    x = open_memmap(x_path, mode="w+", dtype=np.uint8, shape=(n, *IMAGE_SHAPE))
    y = open_memmap(y_path, mode="w+", dtype=np.int64, shape=(n,))
    i = 0
    for batch in rows.iter(batch_size=_BATCH_ROWS):
        for picture in batch[image]:
            x[i] = _pixels(picture, where, start + i)
            i += 1
        y[i - len(batch[label]) : i] = _labels(batch[label], label, where)
    x.flush()
    y.flush()
    largest = int(y.max())
    del x, y
    return largest


def _pixels(picture, where: str, row: int) -> np.ndarray:
    if picture is None:
        raise ValueError(f"{where}: row {row} has no image: expected an image")
    if picture.mode == "1":
        picture = picture.convert("L")
    if picture.mode != "L":
        raise ValueError(f"{where}: row {row} is a {picture.mode!r} image: expected greyscale (mode 'L')")
    pixels = np.asarray(picture, dtype=np.uint8)
    if pixels.shape != IMAGE_SHAPE:
        raise ValueError(
            f"{where}: row {row} is a {pixels.shape[0]}×{pixels.shape[1]} image: "
            f"expected {IMAGE_SHAPE[0]}×{IMAGE_SHAPE[1]} like every image"
        )
    return pixels


def _labels(values: list, label: str, where: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iu" or (array.size and array.min() < 0):
        raise ValueError(
            f"{where}: label_column {label!r} holds {array.dtype} values like {values[:3]}: "
            "expected class ids (integers >= 0)"
        )
    return array.astype(np.int64)
