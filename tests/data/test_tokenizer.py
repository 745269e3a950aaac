import random
from pathlib import Path

import pytest

from workflow_scripts.data.tokenizer import UNK, load_tokenizer, train_tokenizer
from tests.helpers import SHARED_DATA

TINYSHAKESPEARE = SHARED_DATA / "tinyshakespeare.txt"

TRAIN = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n  All:\tSpeak, speak.\n" * 50
ROUND_TRIP = "héllo  wörld\n\n\n   x 😀 日本語\r\n\tend  'tis  \n  "


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def words(n: int, seed: int = 0) -> str:
    """Random lines of made-up words: a corpus with many distinct pairs to merge."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "bo", "qu", "th"]
    lines = []
    for _ in range(n):
        line = " ".join(
            "".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(rng.randint(3, 12))
        )
        lines.append(line + rng.choice([".", ",", "!", ""]))
    return "\n".join(lines) + "\n"


def test_char_vocabulary_is_train_characters_plus_unk(tmp_path):
    info = train_tokenizer({"kind": "char"}, write(tmp_path / "train.txt", TRAIN), tmp_path / "tok.json")
    tok = load_tokenizer(tmp_path / "tok.json")
    vocab = tok.get_vocab()
    assert set(vocab) == set(TRAIN) | {UNK}
    assert vocab[UNK] == 0
    assert [c for c, _ in sorted(vocab.items(), key=lambda kv: kv[1])][1:] == sorted(set(TRAIN))
    assert info == {
        "kind": "char",
        "vocab_size": len(set(TRAIN)) + 1,
        "train_text": str(tmp_path / "train.txt"),
    }


def test_char_round_trip_and_unknown_characters(tmp_path):
    text = "ab c\n\n  d\te\r\nf"
    train_tokenizer({"kind": "char"}, write(tmp_path / "train.txt", text), tmp_path / "tok.json")
    tok = load_tokenizer(tmp_path / "tok.json")
    for s in (text, "\n\n\n", "  a  b\n", text[::-1]):
        enc = tok.encode(s)
        assert len(enc.ids) == len(s)  # one token per character, newlines and runs included
        assert tok.decode(enc.ids) == s
    ids = tok.encode("aZb").ids
    assert ids[1] == 0 and ids[0] != 0 and tok.decode(ids) == f"a{UNK}b"


def test_bpe_round_trips_any_text_exactly(tmp_path):
    train_tokenizer(
        {"kind": "bpe", "vocab_size": 300}, write(tmp_path / "train.txt", TRAIN), tmp_path / "tok.json"
    )
    tok = load_tokenizer(tmp_path / "tok.json")
    for s in (ROUND_TRIP, TRAIN, " leading", "trailing \n", "\x00\x7f é"):
        assert tok.decode(tok.encode(s).ids) == s
    assert tok.token_to_id(UNK) is None  # byte level: nothing is unknown


def test_bpe_reaches_the_vocabulary_size_asked(tmp_path):
    train = write(tmp_path / "train.txt", words(3000))
    info = train_tokenizer({"kind": "bpe", "vocab_size": 400}, train, tmp_path / "tok.json")
    assert info["vocab_size"] == load_tokenizer(tmp_path / "tok.json").get_vocab_size() == 400


def test_bpe_vocabulary_on_tinyshakespeare(tmp_path):
    if not TINYSHAKESPEARE.exists():
        pytest.skip(f"{TINYSHAKESPEARE} absent")
    info = train_tokenizer({"kind": "bpe", "vocab_size": 512}, TINYSHAKESPEARE, tmp_path / "tok.json")
    tok = load_tokenizer(tmp_path / "tok.json")
    assert info["vocab_size"] == tok.get_vocab_size() == 512
    sample = TINYSHAKESPEARE.read_text(encoding="utf-8")[:20000]
    assert tok.decode(tok.encode(sample).ids) == sample
    assert len(tok.encode(sample).ids) < 0.6 * len(sample)  # merges compress


def test_bpe_learns_from_train_only(tmp_path):
    train = words(2000)
    val_word = "xylophonequartz"
    # A word frequent enough to become one token if it were in the training text.
    train_tokenizer(
        {"kind": "bpe", "vocab_size": 600}, write(tmp_path / "train.txt", train), tmp_path / "tok.json"
    )
    tok = load_tokenizer(tmp_path / "tok.json")
    assert len(tok.encode(" " + val_word).ids) > 3
    with_word = train + (" " + val_word) * 2000
    train_tokenizer(
        {"kind": "bpe", "vocab_size": 600}, write(tmp_path / "both.txt", with_word), tmp_path / "tok2.json"
    )
    assert len(load_tokenizer(tmp_path / "tok2.json").encode(" " + val_word).ids) == 1


def test_bad_specs(tmp_path):
    train = write(tmp_path / "train.txt", TRAIN)
    with pytest.raises(
        ValueError, match="kind = 'wordpiece': expected one of \\['char', 'bpe', 'pretrained'\\]"
    ):
        train_tokenizer({"kind": "wordpiece"}, train, tmp_path / "tok.json")
    with pytest.raises(ValueError, match="vocab_size = 100"):
        train_tokenizer({"kind": "bpe", "vocab_size": 100}, train, tmp_path / "tok.json")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        train_tokenizer({"kind": "char"}, tmp_path / "missing.txt", tmp_path / "tok.json")
    with pytest.raises(ValueError, match="empty"):
        train_tokenizer({"kind": "char"}, write(tmp_path / "empty.txt", ""), tmp_path / "tok.json")
    assert not (tmp_path / "tok.json").exists()
    assert set(tmp_path.iterdir()) == {train, tmp_path / "empty.txt"}  # no temporary files left behind


def test_pretrained_file_is_used_as_is(tmp_path):
    train_tokenizer(
        {"kind": "bpe", "vocab_size": 300}, write(tmp_path / "other.txt", TRAIN), tmp_path / "given.json"
    )
    train = write(tmp_path / "train.txt", "text it must not learn from: qqqq zzzz\n" * 20)
    info = train_tokenizer(
        {"kind": "pretrained", "path": str(tmp_path / "given.json")}, train, tmp_path / "tok.json"
    )
    assert (tmp_path / "tok.json").read_bytes() == (
        tmp_path / "given.json"
    ).read_bytes()  # copied, not retrained
    assert info["kind"] == "pretrained" and info["vocab_size"] == 300
    assert (
        load_tokenizer(tmp_path / "tok.json").decode(
            load_tokenizer(tmp_path / "tok.json").encode(ROUND_TRIP).ids
        )
        == ROUND_TRIP
    )


def test_pretrained_errors_are_one_line(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    train = write(tmp_path / "train.txt", TRAIN)
    cases = [
        ({"path": str(tmp_path / "absent.json")}, FileNotFoundError, "absent.json"),
        (
            {"path": str(write(tmp_path / "bad.json", '{"not": "a tokenizer"}'))},
            ValueError,
            "not a tokenizer.json",
        ),
        (
            {"path": "gpt2"},
            ValueError,
            "revision = \"\": expected a commit hash or tag for the hub id 'gpt2'",
        ),
        (
            {"path": "gpt2", "revision": "607a30d"},
            ConnectionError,
            "'gpt2': the Hugging Face hub cannot be reached",
        ),
    ]
    for spec, error, message in cases:
        with pytest.raises(error, match=message) as info:
            train_tokenizer({"kind": "pretrained", **spec}, train, tmp_path / "tok.json")
        assert "\n" not in str(info.value)
    assert not (tmp_path / "tok.json").exists()


def test_an_unreachable_hub_falls_back_to_a_trained_bpe_when_asked(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    train = write(tmp_path / "train.txt", TRAIN * 20)
    spec = {"kind": "pretrained", "path": "openai-community/gpt2", "revision": "607a30d", "fallback_vocab_size": 300}
    info = train_tokenizer(spec, train, tmp_path / "tok.json")
    assert info["kind"] == "bpe" and info["fallback_from"] == "openai-community/gpt2"
    assert "hub cannot be reached" in info["fallback_reason"] and "warning:" in capsys.readouterr().out
    assert load_tokenizer(tmp_path / "tok.json").get_vocab_size() == info["vocab_size"] <= 300
