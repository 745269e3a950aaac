import dataclasses
import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from workflow_scripts.data import synthetic
from workflow_scripts.io import read_json
from workflow_scripts.data.sources import prepare_dataset, read_split
from tests.helpers import SHARED_DATA

TINYSHAKESPEARE = SHARED_DATA / "tinyshakespeare.txt"

GENERATOR = {
    "source": "generator",
    "generator": "hmm_language",
    "hmm": {
        "n_states": 8,
        "vocab_size": 16,
        "zipf_exponent": 1.2,
        "transition_concentration": 0.1,
        "seed": 3,
    },
    "symbols": {"train": 20000, "val": 3000, "test": 2000},
}


def test_generator_splits_are_reproducible_independent_samples(tmp_path):
    record = prepare_dataset(GENERATOR, tmp_path / "a")
    prepare_dataset(GENERATOR, tmp_path / "b")
    texts = {s: read_split(tmp_path / "a" / f"{s}.txt") for s in ("train", "val", "test")}
    for split, text in texts.items():
        assert text == read_split(tmp_path / "b" / f"{split}.txt")
        assert len(text) == GENERATOR["symbols"][split] == record["splits"][split]["n_chars"]
        assert set(text) <= set(synthetic.alphabet(16))
    # Different streams: no split is a prefix of another.
    assert texts["val"][:1000] != texts["test"][:1000]
    assert texts["val"][:1000] not in texts["train"]
    assert (
        read_json(tmp_path / "a" / "source.json")["splits"]
        == read_json(tmp_path / "b" / "source.json")["splits"]
    )


def test_source_json_records_the_exact_optimal_loss(tmp_path):
    record = prepare_dataset(GENERATOR, tmp_path)
    assert read_json(tmp_path / "source.json")["splits"] == record["splits"]
    hmm = synthetic.make_hmm(synthetic.HMMSpec(**GENERATOR["hmm"]))
    alphabet = {c: i for i, c in enumerate(hmm.alphabet)}
    val = np.array([alphabet[c] for c in read_split(tmp_path / "val.txt")])
    entry = record["splits"]["val"]
    assert math.isclose(entry["optimal_nats_total"], -synthetic.log_likelihood(hmm, val), rel_tol=1e-12)
    assert math.isclose(entry["optimal_loss_nats_per_char"], entry["optimal_nats_total"] / 3000)
    assert 0 < entry["optimal_loss_nats_per_char"] < record["uniform_entropy_nats"]
    assert record["hmm"] == dataclasses.asdict(synthetic.HMMSpec(**GENERATOR["hmm"]))  # defaults filled in
    assert "packages" in record["provenance"]


def test_generator_defaults_fill_missing_keys(tmp_path):
    record = prepare_dataset(
        {"hmm": {"n_states": 2, "vocab_size": 4}, "symbols": {"train": 50, "val": 20, "test": 10}}, tmp_path
    )
    assert record["generator"] == "hmm_language"
    assert record["hmm"]["zipf_exponent"] == synthetic.HMMSpec.zipf_exponent


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_local_split_honours_fractions_and_keeps_lines_whole(tmp_path):
    lines = [f"line {i} " + "é" * (i % 7) + "x" * (i % 13) for i in range(2000)]
    write(tmp_path / "a.txt", "\n".join(lines[:1000]) + "\n")
    write(tmp_path / "b.txt", "\n".join(lines[1000:]))  # no final newline
    spec = {"source": "local", "path": str(tmp_path / "*.txt"), "split": {"val": 0.1, "test": 0.2}}
    record = prepare_dataset(spec, tmp_path / "out")
    texts = {s: read_split(tmp_path / "out" / f"{s}.txt") for s in ("train", "val", "test")}
    whole = "\n".join(lines)
    assert texts["train"] + texts["val"] + texts["test"] == whole
    n = len(whole)
    for split, fraction in (("train", 0.7), ("val", 0.1), ("test", 0.2)):
        assert abs(len(texts[split]) / n - fraction) < 0.01
        assert record["splits"][split]["n_chars"] == len(texts[split])
    assert texts["train"].endswith("\n") and texts["val"].endswith("\n")
    assert set(texts["val"].splitlines()) <= set(lines) and set(texts["test"].splitlines()) <= set(lines)
    files = record["files"]
    assert [Path(f["path"]).name for f in files] == ["a.txt", "b.txt"]
    assert files[0]["sha256"] == hashlib.sha256((tmp_path / "a.txt").read_bytes()).hexdigest()
    assert files[1]["size_bytes"] == (tmp_path / "b.txt").stat().st_size


def test_local_text_without_newlines_is_still_split(tmp_path):
    write(tmp_path / "one.txt", "x" * 1000)
    record = prepare_dataset({"source": "local", "path": str(tmp_path / "one.txt")}, tmp_path / "out")
    assert [record["splits"][s]["n_chars"] for s in ("train", "val", "test")] == [900, 50, 50]


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError, match="nope.txt") as info:
        prepare_dataset({"source": "local", "path": [str(missing)]}, tmp_path / "out")
    assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match=r"\*.md"):
        prepare_dataset({"source": "local", "path": str(tmp_path / "*.md")}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_corpus_and_empty_split_are_errors(tmp_path):
    write(tmp_path / "empty.txt", "")
    with pytest.raises(ValueError, match="no text"):
        prepare_dataset({"source": "local", "path": str(tmp_path / "empty.txt")}, tmp_path / "out")
    # Two lines: moving the cuts to line starts leaves nothing after train.
    write(tmp_path / "short.txt", "a" * 50 + "\n" + "b" * 50 + "\n")
    with pytest.raises(ValueError, match="split 'val' is empty"):
        prepare_dataset({"source": "local", "path": str(tmp_path / "short.txt")}, tmp_path / "out")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"source": "hub"}, "source = 'hub': expected one of \\['generator', 'local', 'url', 'hf'\\]"),
        (
            {"source": "generator", "generator": "pcfg"},
            "generator = 'pcfg': expected one of \\['hmm_language'\\]",
        ),
        ({"source": "generator", "hmm": {"states": 3}}, "hmm keys \\['states'\\]"),
    ],
)
def test_unknown_source_or_generator(tmp_path, spec, message):
    with pytest.raises(ValueError, match=message):
        prepare_dataset(spec, tmp_path)


def test_tinyshakespeare(tmp_path):
    if not TINYSHAKESPEARE.exists():
        pytest.skip(f"{TINYSHAKESPEARE} absent")
    record = prepare_dataset(
        {"source": "local", "path": str(TINYSHAKESPEARE), "split": {"val": 0.05, "test": 0.05}}, tmp_path
    )
    text = TINYSHAKESPEARE.read_text(encoding="utf-8")
    parts = [read_split(tmp_path / f"{s}.txt") for s in ("train", "val", "test")]
    assert "".join(parts) == text
    assert all(p.endswith("\n") for p in parts)
    assert abs(record["splits"]["val"]["n_chars"] - 0.05 * len(text)) < 200


SHA = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@pytest.mark.parametrize(
    "dataset, tokenizer, message",
    [
        (
            {"source": "url", "url": "http://x/a.txt"},
            {},
            'datasets.d.sha256 = "": expected the file\'s SHA-256 (64 hex digits) for source url',
        ),
        (
            {"source": "url", "url": "http://x/a.txt", "sha256": "ABC"},
            {},
            'datasets.d.sha256 = "ABC": expected',
        ),
        ({"source": "url", "sha256": SHA}, {}, 'datasets.d.url = "": expected a URL for source url'),
        (
            {"source": "hf", "hf": {"id": "a/b"}},
            {},
            'datasets.d.hf.revision = "": expected a commit hash or tag',
        ),
        ({"source": "hf", "hf": {"revision": "v1"}}, {}, 'datasets.d.hf.id = "": expected a dataset id'),
        (
            {"source": "hf", "hf": {"id": "a/b", "revision": "v1"}, "streaming": True},
            {},
            "datasets.d.max_chars = 0: expected > 0 with streaming",
        ),
        (
            {"source": "local", "path": "a.parquet", "format": "xml"},
            {},
            'datasets.d.format = "xml": expected one of',
        ),
        # A text file that exists (this one), so that only the tokenizer is wrong.
        ({"source": "local", "path": __file__}, {"kind": "pretrained"}, 'tokenizers.t.path = "": expected'),
        (
            {"source": "local", "path": __file__},
            {"kind": "pretrained", "path": "gpt2"},
            'tokenizers.t.revision = "": expected a commit hash or tag for the hub id',
        ),
    ],
)
def test_config_errors_of_sources_and_tokenizers(tiny_config, dataset, tokenizer, message):
    from workflow_scripts.plan.config import ConfigError, validate_config

    tiny_config["datasets"] = {"d": dataset}
    tiny_config["tokenizers"] = {"t": {"kind": "char", **tokenizer}}
    tiny_config["experiments"]["tiny"].update(dataset="d", tokenizer="t")
    with pytest.raises(ConfigError) as info:
        validate_config(tiny_config)
    assert str(info.value).startswith(f"config error: {message}"), str(info.value)
    assert "\n" not in str(info.value)


def test_new_sources_validate_with_defaults(tiny_config):
    from workflow_scripts.plan.config import validate_config

    tiny_config["datasets"] = {
        "u": {"source": "url", "url": "http://x/a.txt", "sha256": SHA},
        "h": {"source": "hf", "hf": {"id": "a/b", "revision": "v1"}, "streaming": True, "max_chars": 1000},
    }
    tiny_config["experiments"]["tiny"]["dataset"] = "u"
    config = validate_config(tiny_config)
    assert config["datasets"]["h"]["hf"]["splits"] == {"train": "train", "val": "", "test": ""}
    assert config["datasets"]["u"]["text_column"] == "text" and config["datasets"]["u"]["format"] == "auto"
