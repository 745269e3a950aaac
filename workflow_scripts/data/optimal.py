"""The generator's optimal loss, per token, for what a model is scored on.

A synthetic language (``workflow_scripts.data.synthetic``) knows the exact optimal loss of
its text. Two floors follow for a token file: per token over the whole split (the
predictor that has seen the entire past), and per predicted token of the evaluation
windows a model of context T sees (the predictor that sees only each window) - the floor a
model of that context can reach, and the one a fitted law's E estimates.
"""

from __future__ import annotations

import numpy as np

from workflow_scripts.data import synthetic


def per_token(source: dict, split: str, n_tokens: int, n_unk: int) -> float | None:
    """The whole-past floor of one split's tokens, or None where the source knows none."""
    # Tokenization is invertible, so the text's optimal total NLL is also that of
    # its tokens; spread over the tokens it is the per-token floor. With <unk>
    # tokens the map loses information and that floor no longer holds.
    total = source.get("splits", {}).get(split, {}).get("optimal_nats_total")
    if total is None or n_unk > 0:
        return None
    return float(total) / n_tokens


def symbols_of_tokens(source: dict, vocab: dict[str, int], n_unk: int) -> list[int] | None:
    """For a character-level tokenization of a synthetic language: token id → the language's
    symbol id (−1 for ids no symbol has); None where tokens are not single symbols."""
    alphabet = source.get("alphabet")
    if alphabet is None or n_unk > 0:
        return None
    symbols = [-1] * (max(vocab.values()) + 1)
    for token, token_id in vocab.items():
        if len(token) == 1 and token in alphabet:
            symbols[token_id] = alphabet.index(token)
    missing = set(alphabet) - set(vocab)  # a symbol with no token of its own: not one-to-one
    return None if missing else symbols


def window_loss(meta: dict, windows: np.ndarray) -> float | None:
    """The floor of a model scored on ``windows`` (n, T + 1) of token ids of the file ``meta``
    describes: the generator's Bayes-optimal loss restarted at each window; None where the
    tokens are not the generator's symbols one to one."""
    symbols = meta.get("symbols_of_tokens")
    hmm_spec = meta.get("source", {}).get("hmm")
    if symbols is None or hmm_spec is None:
        return None
    mapped = np.asarray(symbols)[np.asarray(windows, dtype=np.int64)]
    if mapped.min() < 0:
        return None
    return synthetic.window_optimal_loss(synthetic.make_hmm(synthetic.HMMSpec(**hmm_spec)), mapped)
