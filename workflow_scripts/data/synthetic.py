"""A synthetic language whose optimal loss is known exactly.

Text is emitted by a hidden Markov model (HMM): hidden states follow a Markov
chain with sparse Dirichlet transition rows, and each state emits characters
with Zipf weights 1/rank^s over its own random ordering of the alphabet. The
forward algorithm gives the exact probability of any text under the model, so
-log p(text)/len(text) is the cross-entropy of the Bayes-optimal predictor: the
floor no language model trained on the text can go below (in expectation).

With ``n_components`` > 1 the language is a mixture of that many such HMMs
("skills"), used with Zipf weights 1/rank^γ: the text stays in one component
and switches, with probability ``switch_prob`` per symbol, to a component drawn
by weight. The mixture is itself an HMM (block-diagonal transitions plus a
rank-one switch), so its optimal loss stays exact; many skills of Zipf-distributed
frequency is the picture in which loss falls as a power law of data and
parameters (the quantization model, Michaud et al. 2023).
"""

from __future__ import annotations

import bisect
import string
from dataclasses import dataclass

import numpy as np

# Whitespace first so small alphabets still give "words" and "lines".
_CHARACTERS = " \n" + string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation

# Mixed into every transition row: Dirichlet rows with small concentration can
# hold exact zeros, which could make the chain reducible (no unique stationary
# distribution). A uniform floor this small changes no loss visibly.
_TRANSITION_FLOOR = 1e-9


@dataclass
class HMMSpec:
    n_states: int = 32
    vocab_size: int = 48
    zipf_exponent: float = 2.0
    transition_concentration: float = 0.02  # Dirichlet concentration: small = sparse rows, more structure
    seed: int = 0
    # Each symbol is replaced by a uniformly random one with this probability: the same language,
    # noisier (still an HMM, emissions (1 - p) B + p / V) - a related distribution for transfer tests.
    emission_noise: float = 0.0
    # A mixture of n_components HMMs of n_states each, weighted 1/rank^component_zipf_exponent.
    n_components: int = 1
    component_zipf_exponent: float = 1.0
    switch_prob: float = 0.01  # per symbol: the text moves to a component drawn by weight

    def __post_init__(self) -> None:
        if int(self.n_states) != self.n_states or self.n_states < 1:
            raise ValueError(f"hmm.n_states = {self.n_states!r}: expected an integer >= 1")
        if not self.zipf_exponent > 0:
            raise ValueError(f"hmm.zipf_exponent = {self.zipf_exponent!r}: expected a number > 0")
        if not self.transition_concentration > 0:
            raise ValueError(
                f"hmm.transition_concentration = {self.transition_concentration!r}: expected a number > 0"
            )
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"hmm.seed = {self.seed!r}: expected an integer >= 0")
        if not 0 <= self.emission_noise <= 1:
            raise ValueError(f"hmm.emission_noise = {self.emission_noise!r}: expected a number in [0, 1]")
        if int(self.n_components) != self.n_components or self.n_components < 1:
            raise ValueError(f"hmm.n_components = {self.n_components!r}: expected an integer >= 1")
        if not self.component_zipf_exponent >= 0:
            raise ValueError(
                f"hmm.component_zipf_exponent = {self.component_zipf_exponent!r}: expected a number >= 0"
            )
        if self.n_states * self.n_components > 4096:
            raise ValueError(f"hmm.n_states × hmm.n_components = {self.n_states * self.n_components}: expected at "
                             "most 4096 states in all (the forward algorithm holds their square in floats)")
        if not 0 < self.switch_prob <= 1:
            raise ValueError(f"hmm.switch_prob = {self.switch_prob!r}: expected a number in (0, 1]")
        alphabet(self.vocab_size)  # validates vocab_size


@dataclass
class HMM:
    initial: np.ndarray  # (K,) stationary distribution of `transition`
    transition: np.ndarray  # (K, K) rows sum to 1: p(s_t = j | s_{t-1} = i)
    emission: np.ndarray  # (K, V) rows sum to 1: p(x_t = v | s_t = k)
    alphabet: str  # V characters; symbol v is written as alphabet[v]

    @property
    def n_states(self) -> int:
        return self.transition.shape[0]

    @property
    def vocab_size(self) -> int:
        return self.emission.shape[1]


def alphabet(vocab_size: int) -> str:
    """The first ``vocab_size`` characters of: space, newline, a-z, A-Z, 0-9, punctuation."""
    if int(vocab_size) != vocab_size or not 2 <= vocab_size <= len(_CHARACTERS):
        raise ValueError(f"hmm.vocab_size = {vocab_size!r}: expected an integer in [2, {len(_CHARACTERS)}]")
    return _CHARACTERS[: int(vocab_size)]


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """pi with pi @ A = pi, sum(pi) = 1, solved as a linear system (unique for a positive A)."""
    k = transition.shape[0]
    system = transition.T - np.eye(k)
    system[-1, :] = 1.0  # replace one redundant balance equation by the normalisation
    rhs = np.zeros(k)
    rhs[-1] = 1.0
    pi = np.linalg.solve(system, rhs)
    pi = np.clip(pi, 0.0, None)
    return pi / pi.sum()


def make_hmm(spec: HMMSpec) -> HMM:
    """Draw the model's parameters from ``spec.seed`` (same seed, same language)."""
    rng = np.random.default_rng(spec.seed)
    v = int(spec.vocab_size)
    blocks = [_component(spec, rng) for _ in range(int(spec.n_components))]
    if len(blocks) == 1:
        transition, emission = blocks[0]
    else:
        transition, emission = _mixture(blocks, _zipf(len(blocks), spec.component_zipf_exponent),
                                        float(spec.switch_prob))
    emission = (1 - spec.emission_noise) * emission + spec.emission_noise / v
    return HMM(stationary_distribution(transition), transition, emission, alphabet(v))


def _zipf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** float(exponent)
    return weights / weights.sum()


def _component(spec: HMMSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One HMM's (transition, emission), drawn in the order a single-HMM language always drew them."""
    k, v = int(spec.n_states), int(spec.vocab_size)
    transition = rng.dirichlet(np.full(k, float(spec.transition_concentration)), size=k)
    transition = (1.0 - _TRANSITION_FLOOR) * transition + _TRANSITION_FLOOR / k
    transition /= transition.sum(axis=1, keepdims=True)
    # Zipf's law: the r-th most frequent symbol of a state has weight 1/r^s;
    # each state ranks the symbols by its own permutation, so states differ.
    weights = _zipf(v, spec.zipf_exponent)
    emission = np.empty((k, v))
    for state in range(k):
        emission[state, rng.permutation(v)] = weights
    return transition, emission


def _mixture(blocks, weights: np.ndarray, switch: float) -> tuple[np.ndarray, np.ndarray]:
    """The mixture HMM: A = (1 − ε)·blockdiag(A_m) + ε·1 qᵀ, q = (w_m π_m) over the blocks.

    A switch lands in component m with probability w_m, in its own stationary state
    distribution π_m, so q is also the stationary distribution of A (each component
    holds w_m of the time)."""
    transition = np.zeros((sum(len(a) for a, _ in blocks),) * 2)
    landing, start = [], 0
    for (block, _), w in zip(blocks, weights):
        transition[start:start + len(block), start:start + len(block)] = block
        landing.append(w * stationary_distribution(block))
        start += len(block)
    transition = (1.0 - switch) * transition + switch * np.concatenate(landing)[None, :]
    return transition, np.concatenate([emission for _, emission in blocks])


def _cumulative(rows: np.ndarray) -> np.ndarray:
    cum = np.cumsum(rows, axis=-1)
    cum[..., -1] = 1.0  # so a uniform draw u < 1 always lands inside the row
    return cum


def sample(hmm: HMM, n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    """``n_symbols`` symbol ids drawn from the model, starting in its stationary distribution."""
    if int(n_symbols) != n_symbols or n_symbols < 1:
        raise ValueError(f"n_symbols = {n_symbols!r}: expected an integer >= 1")
    n = int(n_symbols)
    init_cum = _cumulative(hmm.initial)
    trans_cum = [list(row) for row in _cumulative(hmm.transition)]
    uniforms = rng.random(n).tolist()
    # The chain is sequential; bisect over plain lists is the cheapest step in
    # Python (~0.2 us): inverse-CDF sampling, state j iff cum[j-1] <= u < cum[j].
    state = min(int(np.searchsorted(init_cum, uniforms[0], side="right")), hmm.n_states - 1)
    states = [0] * n
    states[0] = state
    for t in range(1, n):
        row = trans_cum[state]
        state = bisect.bisect_right(row, uniforms[t])
        states[t] = state
    states_arr = np.asarray(states, dtype=np.int64)
    # Emissions are independent given the states: one vectorised draw per state.
    emit_cum = _cumulative(hmm.emission)
    u = rng.random(n)
    symbols = np.empty(n, dtype=np.int64)
    for k in range(hmm.n_states):
        mask = states_arr == k
        symbols[mask] = np.searchsorted(emit_cum[k], u[mask], side="right")
    return np.minimum(symbols, hmm.vocab_size - 1)


def log_likelihood(hmm: HMM, symbols: np.ndarray) -> float:
    """ln p(x_1..x_T) by the scaled forward algorithm (Rabiner 1989, eqs. 19-21, 91-92).

    alpha_t(j) = [sum_i alpha_{t-1}(i) a_ij] b_j(x_t); normalising alpha_t by
    c_t = sum_j alpha_t(j) each step keeps it in range, and ln p = sum_t ln c_t.
    """
    x = np.asarray(symbols)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"symbols of shape {x.shape}: expected a non-empty 1-D array")
    if x.min() < 0 or x.max() >= hmm.vocab_size:
        raise ValueError(f"symbols in [{x.min()}, {x.max()}]: expected ids in [0, {hmm.vocab_size - 1}]")
    a = np.ascontiguousarray(hmm.transition)
    emission_t = np.ascontiguousarray(hmm.emission.T)  # (V, K): row x is b_.(x)
    scales = np.empty(x.size)
    alpha = hmm.initial * emission_t[x[0]]
    scales[0] = alpha.sum()
    alpha /= scales[0]
    pred = np.empty_like(alpha)
    xs = x.tolist()
    for t in range(1, x.size):
        np.dot(alpha, a, out=pred)  # (K,) predictive state distribution
        np.multiply(pred, emission_t[xs[t]], out=alpha)
        c = alpha.sum()  # p(x_t | x_<t)
        scales[t] = c
        alpha *= 1.0 / c
    return float(np.log(scales).sum())


def optimal_loss(hmm: HMM, symbols: np.ndarray) -> float:
    """Nats per symbol of the Bayes-optimal predictor that has seen the whole past."""
    return -log_likelihood(hmm, symbols) / len(symbols)


def text(hmm: HMM, symbols: np.ndarray) -> str:
    """The symbols written as characters of the model's alphabet."""
    table = np.array(list(hmm.alphabet))
    return "".join(table[np.asarray(symbols)].tolist())


def window_optimal_loss(hmm: HMM, windows: np.ndarray) -> float:
    """Nats per predicted symbol of the Bayes-optimal predictor that sees only each window.

    ``windows`` (n, T + 1): a model of context T is scored on predicting symbols 1..T of each
    window from the ones before them inside it, so its floor is the mean of
    −ln p(x_t | x_0..x_{t−1}) with the forward recursion restarted at each window from the
    stationary distribution: above the whole-past ``optimal_loss`` by what the lost context
    is worth. Vectorised over windows (the recursion runs along T).
    """
    x = np.asarray(windows)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] < 2:
        raise ValueError(f"windows of shape {x.shape}: expected (n >= 1, T + 1 >= 2)")
    if x.min() < 0 or x.max() >= hmm.vocab_size:
        raise ValueError(f"symbols in [{x.min()}, {x.max()}]: expected ids in [0, {hmm.vocab_size - 1}]")
    emission_t = hmm.emission.T  # (V, K)
    alpha = hmm.initial[None, :] * emission_t[x[:, 0]]  # (n, K)
    alpha /= alpha.sum(axis=1, keepdims=True)
    nats = 0.0
    for t in range(1, x.shape[1]):
        alpha = (alpha @ hmm.transition) * emission_t[x[:, t]]
        c = alpha.sum(axis=1)  # p(x_t | the window's x_<t)
        nats -= float(np.log(c).sum())
        alpha /= c[:, None]
    return nats / (x.shape[0] * (x.shape[1] - 1))
