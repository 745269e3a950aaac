import math

import numpy as np

from workflow_scripts.data import optimal, synthetic
from workflow_scripts.data.sources import prepare_dataset, read_split
from workflow_scripts.data.tokenizer import train_tokenizer
from workflow_scripts.data.tokens import open_tokens, tokenize_split
from workflow_scripts.io import read_json

SPEC = {"source": "generator",
        "hmm": {"n_states": 3, "vocab_size": 10, "n_components": 4, "switch_prob": 0.05, "seed": 1},
        "symbols": {"train": 20000, "val": 3000, "test": 2000}}


def tokenized_val(tmp_path, tok_spec):
    raw = tmp_path / "raw"
    if not (raw / "source.json").exists():
        prepare_dataset(SPEC, raw)
    folder = tmp_path / tok_spec["kind"]
    train_tokenizer(tok_spec, raw / "train.txt", folder / "tokenizer.json")
    meta = tokenize_split(folder / "tokenizer.json", raw / "val.txt", folder / "val.bin", folder / "val.json",
                          source_meta=read_json(raw / "source.json"), split="val")
    return raw, meta, open_tokens(folder / "val.bin")


def test_window_floor_of_char_tokens_is_the_generator_floor_of_its_symbols(tmp_path):
    raw, meta, tokens = tokenized_val(tmp_path, {"kind": "char"})
    hmm = synthetic.make_hmm(synthetic.HMMSpec(**SPEC["hmm"]))
    symbols = np.array([hmm.alphabet.index(c) for c in read_split(raw / "val.txt")])
    # Windows as the evaluation takes them: starts at multiples of the context T, T + 1 tokens each.
    context, n = 32, 20
    windows = np.stack([np.asarray(tokens[i * context:i * context + context + 1]) for i in range(n)])
    expected = synthetic.window_optimal_loss(hmm, np.stack([symbols[i * context:i * context + context + 1]
                                                            for i in range(n)]))
    assert math.isclose(optimal.window_loss(meta, windows), expected, rel_tol=1e-12)
    assert optimal.window_loss(meta, windows) > meta["optimal_loss_per_token"] * 0.9  # same scale, nats


def test_no_window_floor_where_tokens_are_not_the_symbols(tmp_path):
    _, meta, tokens = tokenized_val(tmp_path, {"kind": "bpe", "vocab_size": 280})
    assert meta["symbols_of_tokens"] is None
    assert optimal.window_loss(meta, np.asarray(tokens[:66]).reshape(2, 33)) is None
    assert optimal.symbols_of_tokens({"alphabet": "abc"}, {"<unk>": 0, "a": 1, "b": 2}, 0) is None  # c has no token
    assert optimal.symbols_of_tokens({"alphabet": "ab"}, {"<unk>": 0, "a": 1, "b": 2}, 0) == [-1, 0, 1]
    assert optimal.symbols_of_tokens({"alphabet": "ab"}, {"a": 0, "b": 1}, 3) is None  # <unk> in the split
