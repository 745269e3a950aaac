"""Dataset preparation: a source becomes raw text splits.

Sources: ``generator`` (synthetic text with a known optimal loss), ``local``
(text files, or parquet/jsonl/arrow/csv tables with a text column), ``url``
(one file pinned by sha256, downloaded once) and ``hf`` (a hub dataset at a
pinned revision). ``prepare_dataset`` writes ``train.txt``, ``val.txt``,
``test.txt`` (UTF-8) and ``source.json`` (what was read or generated, split
sizes, the optimal loss where the source knows it, provenance) into one folder.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from workflow_scripts.data import download
from workflow_scripts.data import structured
from workflow_scripts.data import synthetic
from workflow_scripts.plan.inputs import DOWNLOAD_DIR, download_path
from workflow_scripts.io import atomic_write_json, atomic_write_text, provenance
from workflow_scripts.plan import local_files

SPLITS = ("train", "val", "test")
SOURCES = ("generator", "local", "url", "hf")
GENERATORS = ("hmm_language",)


def prepare_dataset(
    spec: dict, out_dir: str | os.PathLike, download_dir: str | os.PathLike = DOWNLOAD_DIR
) -> dict:
    """Write the three text splits and ``source.json`` of one dataset; return the source record.

    ``download_dir``: where a ``url`` source's verified file is kept (fetched only if absent).
    """
    source = spec.get("source", "generator")
    if source == "generator":
        generator = spec.get("generator", "hmm_language")
        if generator not in GENERATORS:
            raise ValueError(f"dataset generator = {generator!r}: expected one of {list(GENERATORS)}")
        texts, record = _hmm_language(spec)
    elif source == "local":
        texts, record = _files(spec, local_files.resolve_paths(spec.get("path", "")))
    elif source == "url":
        url, sha256 = spec.get("url", ""), spec.get("sha256", "")
        path = download.fetch(url, sha256, download_path(url, sha256, download_dir))
        texts, record = _files(spec, [path])
        record["url"] = url
    elif source == "hf":
        read, record = structured.read_hub(spec)
        texts, record["splits"] = split_from_train(read, spec.get("split", {}))
    else:
        raise ValueError(f"dataset source = {source!r}: expected one of {list(SOURCES)}")
    record = {"source": source, "spec": spec, **record}
    out_dir = Path(out_dir)
    for split in SPLITS:
        atomic_write_text(out_dir / f"{split}.txt", texts[split])
    record["provenance"] = provenance(config=spec)
    atomic_write_json(out_dir / "source.json", record)
    return record


def read_split(path: str | os.PathLike) -> str:
    """A split exactly as written (no newline translation)."""
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _hmm_language(spec: dict) -> tuple[dict[str, str], dict[str, Any]]:
    hmm = spec.get("hmm", {})
    unknown = sorted(set(hmm) - set(synthetic.HMMSpec.__dataclass_fields__))
    if unknown:
        raise ValueError(
            f"dataset hmm keys {unknown}: expected only {list(synthetic.HMMSpec.__dataclass_fields__)}"
        )
    hmm_spec = synthetic.HMMSpec(**hmm)
    symbols = {"train": 1_000_000, "val": 50_000, "test": 50_000, **spec.get("symbols", {})}
    model = synthetic.make_hmm(hmm_spec)
    # One child seed per split (numpy SeedSequence.spawn): independent streams,
    # each reproducible on its own, and distinct from the stream of make_hmm.
    seeds = np.random.SeedSequence(hmm_spec.seed).spawn(len(SPLITS))
    texts, splits = {}, {}
    for split, seed in zip(SPLITS, seeds):
        ids = synthetic.sample(model, symbols[split], np.random.default_rng(seed))
        nats = -synthetic.log_likelihood(model, ids)
        texts[split] = synthetic.text(model, ids)
        splits[split] = {
            "n_chars": len(texts[split]),
            "optimal_loss_nats_per_char": nats / len(ids),
            "optimal_nats_total": nats,
        }
    record = {
        "generator": spec.get("generator", "hmm_language"),
        "hmm": asdict(hmm_spec),
        "alphabet": model.alphabet,
        # Cheaper reference points for the same text: unigram entropy of the
        # stationary emission marginal, and the uniform log V.
        "stationary_unigram_entropy_nats": _entropy(model.initial @ model.emission),
        "uniform_entropy_nats": float(np.log(model.vocab_size)),
        "splits": splits,
    }
    return texts, record


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _line_start(text: str, cut: int) -> int:
    """``cut`` moved forward to the start of the next line, if the text has one."""
    if cut <= 0 or cut >= len(text) or text[cut - 1] == "\n":
        return cut
    newline = text.find("\n", cut)
    return cut if newline == -1 else newline + 1


def _files(spec: dict, paths: list[Path]) -> tuple[dict[str, str], dict[str, Any]]:
    """Local or downloaded files: plain text, or a table's text column; one corpus to split."""
    fmt = local_files.file_format(paths, spec.get("format", "auto"))
    if fmt == "text":
        text, read = _read_text(paths), None
    else:
        text, read = structured.read_files(spec, paths, fmt)
    texts, splits = split_from_train({"train": text}, spec.get("split", {}))
    record = {
        "format": fmt,
        "files": structured.describe_files(paths),
        "n_chars": len(text),
        "splits": splits,
    }
    if read is not None:
        record["read"] = read
    return texts, record


def _read_text(paths: list[Path]) -> str:
    parts = []
    for path in paths:
        data = path.read_bytes()
        try:
            part = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"dataset file {str(path)!r}: not UTF-8 text ({error.reason} at byte {error.start})"
            )
        # Files are joined on a line boundary so no line spans two files.
        if parts and parts[-1] and not parts[-1].endswith("\n"):
            parts.append("\n")
        parts.append(part)
    text = "".join(parts)
    if not text:
        raise ValueError(f"dataset files {[str(p) for p in paths]}: the files hold no text")
    return text


def missing_splits(present, fractions: dict) -> tuple[list[str], dict]:
    """The splits among val and test the source lacks, and the fractions (defaults filled in, checked)."""
    fractions = {"val": 0.05, "test": 0.05, **fractions}
    missing = [s for s in ("val", "test") if s not in present]
    for name in missing:
        f = fractions[name]
        if not isinstance(f, (int, float)) or not 0 < f < 0.5:
            raise ValueError(f"dataset split.{name} = {f!r}: expected a fraction in (0, 0.5)")
    return missing, fractions


def cut_bounds(n: int, missing: list[str], fractions: dict, snap=lambda i: i) -> dict[str, tuple[int, int]]:
    """[start, end) of train and of each missing split within the source's train of length ``n``:
    train first, then the missing ones in order, each a fraction of n from the end; ``snap``
    moves a cut (e.g. to a line start)."""
    share = 1.0 - sum(fractions[s] for s in missing)
    cut = snap(round(n * share))
    bounds = {"train": (0, cut)}
    for i, name in enumerate(missing):
        share += fractions[name]
        end = n if i == len(missing) - 1 else snap(max(cut, round(n * share)))
        bounds[name], cut = (cut, end), end
    return bounds


def split_from_train(texts: dict[str, str], fractions: dict) -> tuple[dict[str, str], dict[str, Any]]:
    """train, val and test: each one the source lacks is cut from the end of train by fraction.

    Contiguous and deterministic: train first, then val, then test, each cut
    moved to a line start; fractions are of the source's train text.
    """
    missing, fractions = missing_splits(texts, fractions)
    text = texts["train"]
    n = len(text)
    bounds = cut_bounds(n, missing, fractions, snap=lambda i: _line_start(text, i))
    out = {**texts, **{name: text[start:end] for name, (start, end) in bounds.items()}}
    for split in SPLITS:
        if not out[split]:
            raise ValueError(
                f"dataset split {split!r} is empty: {n} characters with "
                + ", ".join(f"{s}={fractions[s]}" for s in missing)
                + "; expected a longer text or larger fractions"
            )
    total = sum(len(out[s]) for s in SPLITS)
    splits = {
        s: {"n_chars": len(out[s]), "fraction": len(out[s]) / total, "cut_from_train": s in missing}
        for s in SPLITS
    }
    return {s: out[s] for s in SPLITS}, splits
