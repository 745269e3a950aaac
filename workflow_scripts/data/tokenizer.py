"""Tokenizers, all saved as a ``tokenizers`` tokenizer.json beside the data they encode.

- ``char``: one token per Unicode character seen in the train split, plus
  ``<unk>`` at id 0 for characters first seen in val/test; the characters
  follow in sorted order at ids 1..V-1.
- ``bpe``: byte-level BPE (GPT-2 style): every text round-trips exactly, and
  the merges are learned on the train split only.
- ``pretrained``: an existing tokenizer.json used as is (copied byte for
  byte, never trained): a file, or a hub model id at a pinned revision; with
  ``fallback_vocab_size``, a hub that cannot be reached means a trained
  ``bpe`` of that size instead (with a warning, and the record says so).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from workflow_scripts.io import atomic_path

KINDS = ("char", "bpe", "pretrained")
UNK = "<unk>"
# Oniguruma's "." skips "\n"; [\s\S] is any single code point, newline included.
_ANY_CHARACTER = r"[\s\S]"


def train_tokenizer(spec: dict, train_text_path: str | os.PathLike, out_path: str | os.PathLike) -> dict:
    """Train the tokenizer ``spec`` describes on one text file; save it atomically to ``out_path``."""
    kind = spec.get("kind", "char")
    train_text_path = Path(train_text_path)
    if not train_text_path.is_file():
        raise FileNotFoundError(f"train text {str(train_text_path)!r}: no such file")
    if kind == "char":
        tokenizer = _train_char(train_text_path)
        info = {"kind": kind}
    elif kind == "bpe":
        requested = spec.get("vocab_size", 512)
        if int(requested) != requested or requested < 257:
            raise ValueError(f"tokenizer vocab_size = {requested!r}: expected an integer >= 257 for bpe")
        tokenizer = _train_bpe(train_text_path, int(requested))
        info = {"kind": kind, "vocab_size_requested": int(requested)}
    elif kind == "pretrained":
        try:
            source = _pretrained_file(spec)
        except ConnectionError as error:
            if not spec.get("fallback_vocab_size"):
                raise
            # Offline: the study still runs, on a BPE of its own (recorded, so results say which).
            print(f"warning: {error}; training a byte-level BPE of {spec['fallback_vocab_size']} tokens instead")
            return train_tokenizer({"kind": "bpe", "vocab_size": spec["fallback_vocab_size"]}, train_text_path,
                                   out_path) | {"fallback_from": spec["path"], "fallback_reason": str(error)}
        tokenizer = load_tokenizer(source)  # fails here, not at tokenize time, if it is no tokenizer
        info = {"kind": kind, "path": spec["path"], "revision": spec.get("revision", ""), "file": str(source)}
    else:
        raise ValueError(f"tokenizer kind = {kind!r}: expected one of {list(KINDS)}")
    with atomic_path(out_path, suffix=".json") as tmp:
        if kind == "pretrained":
            shutil.copyfile(source, tmp)  # byte for byte: its sha256 in the token meta is the original's
        else:
            tokenizer.save(str(tmp))
    info["vocab_size"] = tokenizer.get_vocab_size(with_added_tokens=True)
    info["train_text"] = str(train_text_path)
    return info


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    if not Path(path).is_file():
        raise FileNotFoundError(f"tokenizer {str(path)!r}: no such file")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception with serde's message
        raise ValueError(f"tokenizer {str(path)!r}: not a tokenizer.json ({error})") from None


def _pretrained_file(spec: dict) -> Path:
    """The tokenizer.json a pretrained spec names: a local file, or one fetched from the hub."""
    path, revision = spec.get("path", ""), spec.get("revision", "")
    if not path:
        raise ValueError(
            'tokenizer path = "": expected a tokenizer.json file or a hub id for kind pretrained'
        )
    if path.endswith(".json"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"tokenizer path = {path!r}: no such file")
        return Path(path)
    if not revision:
        raise ValueError(f'tokenizer revision = "": expected a commit hash or tag for the hub id {path!r}')
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(path, "tokenizer.json", revision=revision))
    except (LocalEntryNotFoundError, ConnectionError) as error:
        raise ConnectionError(
            f"tokenizer path = {path!r}: the Hugging Face hub cannot be reached ({type(error).__name__}); "
            "fetch its tokenizer.json where it can and set path: <file>.json"
        ) from None


def _read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def _train_char(path: Path) -> Tokenizer:
    characters = sorted(set(_read(path)))
    if not characters:
        raise ValueError(f"train text {str(path)!r} is empty: expected at least one character")
    vocab = {UNK: 0, **{c: i + 1 for i, c in enumerate(characters)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # Every character its own pre-token; WordLevel then maps each to its id.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(_ANY_CHARACTER), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()  # concatenate tokens, no spaces between
    return tokenizer


def _train_bpe(path: Path, vocab_size: int) -> Tokenizer:
    if path.stat().st_size == 0:
        raise ValueError(f"train text {str(path)!r} is empty: expected text to learn merges from")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=0,  # reach the size asked for wherever the corpus has that many pairs
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
        show_progress=False,
    )
    tokenizer.train([str(path)], trainer)
    return tokenizer
