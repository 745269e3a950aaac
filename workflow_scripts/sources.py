"""Dataset preparation: a source (generator or local files) becomes raw text splits.

``prepare_dataset`` writes ``train.txt``, ``val.txt``, ``test.txt`` (UTF-8) and
``source.json`` (what was read or generated, split sizes, the optimal loss
where the source knows it, provenance) into one folder.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from workflow_scripts import synthetic
from workflow_scripts.io import atomic_write_json, atomic_write_text, provenance

SPLITS = ("train", "val", "test")
SOURCES = ("generator", "local")
GENERATORS = ("hmm_language",)


def prepare_dataset(spec: dict, out_dir: str | os.PathLike) -> dict:
    """Write the three text splits and ``source.json`` of one dataset; return the source record."""
    source = spec.get("source", "generator")
    if source == "generator":
        generator = spec.get("generator", "hmm_language")
        if generator not in GENERATORS:
            raise ValueError(f"dataset generator = {generator!r}: expected one of {list(GENERATORS)}")
        texts, record = _hmm_language(spec)
    elif source == "local":
        texts, record = _local(spec)
    else:
        raise ValueError(f"dataset source = {source!r}: expected one of {list(SOURCES)}")
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
        "source": "generator",
        "generator": spec.get("generator", "hmm_language"),
        "spec": spec,
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


def _resolve_paths(path: str | list[str]) -> list[Path]:
    patterns = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not patterns or any(not str(p) for p in patterns):
        raise ValueError(f"dataset path = {path!r}: expected a file, a glob, or a list of them")
    found: set[str] = set()
    for pattern in patterns:
        matches = [m for m in glob.glob(os.fspath(pattern)) if os.path.isfile(m)]
        if not matches:
            raise FileNotFoundError(
                f"dataset path {os.fspath(pattern)!r}: no such file (or the glob matched none)"
            )
        found.update(matches)
    return [Path(p) for p in sorted(found)]


def _line_start(text: str, cut: int) -> int:
    """``cut`` moved forward to the start of the next line, if the text has one."""
    if cut <= 0 or cut >= len(text) or text[cut - 1] == "\n":
        return cut
    newline = text.find("\n", cut)
    return cut if newline == -1 else newline + 1


def _local(spec: dict) -> tuple[dict[str, str], dict[str, Any]]:
    paths = _resolve_paths(spec.get("path", ""))
    fractions = {"val": 0.05, "test": 0.05, **spec.get("split", {})}
    for name in ("val", "test"):
        f = fractions[name]
        if not isinstance(f, (int, float)) or not 0 < f < 0.5:
            raise ValueError(f"dataset split.{name} = {f!r}: expected a fraction in (0, 0.5)")
    parts, files = [], []
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
        files.append({"path": str(path), "size_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    text = "".join(parts)
    if not text:
        raise ValueError(f"dataset path = {spec.get('path')!r}: the files hold no text")
    # Contiguous split: train first, then val, then test, each cut moved to a line start.
    n = len(text)
    cut_val = _line_start(text, round(n * (1.0 - fractions["val"] - fractions["test"])))
    cut_test = _line_start(text, max(cut_val, round(n * (1.0 - fractions["test"]))))
    texts = {"train": text[:cut_val], "val": text[cut_val:cut_test], "test": text[cut_test:]}
    for split, chunk in texts.items():
        if not chunk:
            raise ValueError(
                f"dataset split {split!r} is empty: {n} characters with val={fractions['val']}, "
                f"test={fractions['test']}; expected a longer text or larger fractions"
            )
    record = {
        "source": "local",
        "spec": spec,
        "files": files,
        "n_chars": n,
        "fractions": fractions,
        "splits": {
            split: {"n_chars": len(chunk), "fraction": len(chunk) / n} for split, chunk in texts.items()
        },
    }
    return texts, record
