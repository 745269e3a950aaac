import hashlib
import math
import os
import random

import numpy as np
import pytest

from workflow_scripts.io import read_json
from workflow_scripts.data.sources import prepare_dataset
from workflow_scripts.data.tokenizer import load_tokenizer, train_tokenizer
from workflow_scripts.data.tokens import open_tokens, token_dtype, tokenize_split, verified_tokens, verify_tokens

# Pieces that stress chunk boundaries: whitespace runs before and after
# newlines, CRLF, tabs, non-breaking and line-separator spaces, contractions.
PIECES = [
    "word",
    "Ab",
    "é",
    "日本",
    "😀",
    "12",
    "!?",
    "'s",
    "don't",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    " \n",
    "\n ",
    "\r\n",
    "\u00a0",
    "\u2028",
    "x\ny",
    "end.\nNext",
]


def messy_text(n_pieces: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(PIECES) for _ in range(n_pieces))


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    train = folder / "train.txt"
    train.write_bytes((messy_text(20000, seed=0) + "".join(PIECES)).encode("utf-8"))
    train_tokenizer({"kind": "char"}, train, folder / "char.json")
    train_tokenizer({"kind": "bpe", "vocab_size": 300}, train, folder / "bpe.json")
    return {"char": folder / "char.json", "bpe": folder / "bpe.json"}


@pytest.mark.parametrize("kind", ["char", "bpe"])
@pytest.mark.parametrize("seed, chunk_chars", [(1, 1000), (2, 37), (3, 5000)])
def test_chunked_ids_equal_encoding_the_whole_text(tmp_path, tokenizers, kind, seed, chunk_chars):
    text = messy_text(6000, seed) + "\n" + "line of words\n" * 300 + "tail  "
    path = tmp_path / "val.txt"
    path.write_bytes(text.encode("utf-8"))
    meta = tokenize_split(
        tokenizers[kind],
        path,
        tmp_path / "val.bin",
        tmp_path / "val.json",
        split="val",
        chunk_chars=chunk_chars,
    )
    expected = load_tokenizer(tokenizers[kind]).encode(text).ids
    tokens = open_tokens(tmp_path / "val.bin")
    assert meta["n_tokens"] == len(expected) and meta["n_chars"] == len(text)
    np.testing.assert_array_equal(np.asarray(tokens), expected)


def test_whitespace_before_newline_is_not_a_cut(tmp_path, tokenizers):
    # " \nX" pre-tokenizes as " ", "\n" in context but " \n" at a chunk's end:
    # a cut there would change the ids, so the chunker must not take it.
    text = "ab \ncd \nef \ngh\nij" * 50
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    tokenize_split(tokenizers["bpe"], path, tmp_path / "t.bin", tmp_path / "t.json", chunk_chars=3)
    np.testing.assert_array_equal(
        open_tokens(tmp_path / "t.bin"), load_tokenizer(tokenizers["bpe"]).encode(text).ids
    )


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_text_without_safe_newlines_is_cut_before_lone_spaces(tmp_path, tokenizers, kind):
    # CRLF lines offer no cut after "\n" (it follows "\r"): the chunker falls back
    # to a lone " " between words, and must skip runs of spaces.
    rng = random.Random(4)
    text = "".join(rng.choice(["ab", "cd", "don't", " ", "  ", "   ", "\r\n", "\t"]) for _ in range(5000))
    path = tmp_path / "crlf.txt"
    path.write_bytes(text.encode("utf-8"))
    tokenize_split(tokenizers[kind], path, tmp_path / "c.bin", tmp_path / "c.json", chunk_chars=50)
    np.testing.assert_array_equal(
        open_tokens(tmp_path / "c.bin"), load_tokenizer(tokenizers[kind]).encode(text).ids
    )


def test_meta_contract(tmp_path, tokenizers):
    path = tmp_path / "train.txt"
    path.write_text("hello world\n" * 100, encoding="utf-8")
    meta = tokenize_split(
        tokenizers["bpe"],
        path,
        tmp_path / "train.bin",
        tmp_path / "train.json",
        source_meta={"source": "local", "provenance": {"big": 1}},
        split="train",
    )
    assert read_json(tmp_path / "train.json") == meta
    assert meta["format_version"] == 1 and meta["split"] == "train"
    assert meta["dtype"] == "uint16" and meta["byteorder"] == "little" and meta["vocab_size"] == 300
    assert meta["sha256"] == hashlib.sha256((tmp_path / "train.bin").read_bytes()).hexdigest()
    assert meta["tokenizer"]["sha256"] == hashlib.sha256(tokenizers["bpe"].read_bytes()).hexdigest()
    assert meta["source"] == {"source": "local"}  # bulky provenance of the source dropped
    assert meta["optimal_loss_per_token"] is None
    assert (tmp_path / "train.bin").stat().st_size == 2 * meta["n_tokens"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.bin", "train.json", "train.txt"]


def test_open_tokens_is_a_read_only_memmap(tmp_path, tokenizers):
    path = tmp_path / "val.txt"
    path.write_text("some text\n" * 500, encoding="utf-8")
    meta = tokenize_split(tokenizers["char"], path, tmp_path / "val.bin", tmp_path / "val.json")
    tokens = open_tokens(tmp_path / "val.bin")
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.dtype("<u2")
    assert len(tokens) == meta["n_tokens"] == 5000
    with pytest.raises(ValueError):
        tokens[0] = 1
    (tmp_path / "val.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="7 bytes"):
        open_tokens(tmp_path / "val.bin")


def test_optimal_loss_per_token_from_generator_source(tmp_path):
    spec = {
        "source": "generator",
        "hmm": {"n_states": 4, "vocab_size": 12, "seed": 2},
        "symbols": {"train": 20000, "val": 2000, "test": 2000},
    }
    raw = tmp_path / "raw"
    source = prepare_dataset(spec, raw)
    for kind, tok_spec in (("char", {"kind": "char"}), ("bpe", {"kind": "bpe", "vocab_size": 280})):
        train_tokenizer(tok_spec, raw / "train.txt", tmp_path / kind / "tokenizer.json")
        meta = tokenize_split(
            tmp_path / kind / "tokenizer.json",
            raw / "val.txt",
            tmp_path / kind / "val.bin",
            tmp_path / kind / "val.json",
            source_meta=read_json(raw / "source.json"),
            split="val",
        )
        total = source["splits"]["val"]["optimal_nats_total"]
        assert math.isclose(meta["optimal_loss_per_token"], total / meta["n_tokens"], rel_tol=1e-12)
        assert "provenance" not in meta["source"] and meta["source"]["splits"] == source["splits"]
    assert meta["n_tokens"] < 2000  # BPE merges: fewer tokens, higher floor per token


def test_unknown_characters_void_the_optimal_loss(tmp_path, tokenizers):
    path = tmp_path / "val.txt"
    path.write_text("abc ZZZ ~~~ \u0394", encoding="utf-8")  # Δ never seen in training
    meta = tokenize_split(
        tokenizers["char"],
        path,
        tmp_path / "val.bin",
        tmp_path / "val.json",
        source_meta={"splits": {"val": {"optimal_nats_total": 10.0}}},
        split="val",
    )
    assert meta["n_unk"] >= 1 and meta["optimal_loss_per_token"] is None


def test_errors(tmp_path, tokenizers):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        tokenize_split(tokenizers["char"], empty, tmp_path / "e.bin", tmp_path / "e.json")
    assert not (tmp_path / "e.bin").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        tokenize_split(tokenizers["char"], tmp_path / "absent.txt", tmp_path / "e.bin", tmp_path / "e.json")
    assert token_dtype(65536) == np.dtype("<u2") and token_dtype(65537) == np.dtype("<u4")
    with pytest.raises(ValueError, match="vocab_size = 4294967297"):
        token_dtype(2**32 + 1)


def test_the_largest_id_picks_the_dtype(tmp_path):
    # A pretrained vocabulary with a gap: 3 entries, but ids up to 70,000 need uint32.
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "b": 70000}, unk_token="<unk>"))
    tok.save(str(tmp_path / "tok.json"))
    (tmp_path / "t.txt").write_text("b")
    meta = tokenize_split(tmp_path / "tok.json", tmp_path / "t.txt", tmp_path / "t.bin", tmp_path / "t.json")
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70001
    assert open_tokens(tmp_path / "t.bin").tolist() == [70000]


def _token_file(tmp_path, tokenizers, name="val"):
    path = tmp_path / f"{name}.txt"
    path.write_text(messy_text(3000, seed=5), encoding="utf-8")
    return tokenize_split(tokenizers["char"], path, tmp_path / f"{name}.bin", tmp_path / f"{name}.json")


def test_a_token_file_changed_in_place_with_its_size_kept_fails_naming_it(tmp_path, tokenizers):
    meta = _token_file(tmp_path, tokenizers)
    ids = np.fromfile(tmp_path / "val.bin", dtype="<u2")
    np.random.default_rng(0).permutation(ids).tofile(tmp_path / "val.bin")  # same ids, same size, other order
    with pytest.raises(ValueError) as error:
        open_tokens(tmp_path / "val.bin")
    message = str(error.value)
    assert "val.bin" in message and meta["sha256"] in message and "\n" not in message
    assert "changed after tokenization" in message


def test_ids_outside_the_vocabulary_fail_before_the_hash_is_compared(tmp_path, tokenizers):
    meta = _token_file(tmp_path, tokenizers)
    n = (tmp_path / "val.bin").stat().st_size
    np.random.default_rng(1).integers(0, 2**16, n // 2, dtype="<u2").tofile(tmp_path / "val.bin")  # random bytes
    with pytest.raises(ValueError, match=rf"val.bin'? holds id \d+, outside the vocabulary of {meta['vocab_size']}"):
        open_tokens(tmp_path / "val.bin")


def test_verification_runs_once_per_file_is_recorded_and_sees_a_later_change(tmp_path, tokenizers):
    meta = _token_file(tmp_path, tokenizers)
    record = verify_tokens(tmp_path / "val.bin", meta)
    assert record["sha256"] == meta["sha256"] and record["bytes"] == 2 * meta["n_tokens"]
    assert record["max_id"] < meta["vocab_size"] == record["vocab_size"]
    assert verify_tokens(tmp_path / "val.bin", meta) is record  # the same file again: not re-read
    assert record in verified_tokens()
    ids = np.fromfile(tmp_path / "val.bin", dtype="<u2")
    ids[[0, 1]] = ids[[1, 0]] if ids[0] != ids[1] else (ids[0], (ids[1] + 1) % meta["vocab_size"])
    ids.tofile(tmp_path / "val.bin")  # a rewrite: a new modification time, so checked again
    stat = (tmp_path / "val.bin").stat()  # (a clock tick later than the first write, on any file system)
    os.utime(tmp_path / "val.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match="sha256"):
        verify_tokens(tmp_path / "val.bin", meta)
    assert open_tokens(tmp_path / "val.bin", verify=False)[0] == ids[0]  # the unchecked path still maps it
