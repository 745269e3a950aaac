import itertools
import math

import numpy as np
import pytest

from workflow_scripts.data.synthetic import (
    HMMSpec,
    alphabet,
    log_likelihood,
    make_hmm,
    optimal_loss,
    sample,
    stationary_distribution,
    text,
    window_optimal_loss,
)


def brute_force_probability(hmm, x):
    """p(x) summed over every hidden path: sum_s pi(s_0) b(x_0) prod_t a(s_{t-1}, s_t) b(x_t)."""
    total = 0.0
    for path in itertools.product(range(hmm.n_states), repeat=len(x)):
        p = hmm.initial[path[0]] * hmm.emission[path[0], x[0]]
        for t in range(1, len(x)):
            p *= hmm.transition[path[t - 1], path[t]] * hmm.emission[path[t], x[t]]
        total += p
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_algorithm_equals_sum_over_all_paths(seed):
    hmm = make_hmm(HMMSpec(n_states=3, vocab_size=4, transition_concentration=0.5, seed=seed))
    x = sample(hmm, 6, np.random.default_rng(seed))
    exact = brute_force_probability(hmm, x)  # 3^6 = 729 paths
    assert math.isclose(log_likelihood(hmm, x), math.log(exact), rel_tol=1e-10)
    assert math.isclose(optimal_loss(hmm, x), -math.log(exact) / 6, rel_tol=1e-10)


def log_space_forward(hmm, x):
    """The unscaled recursion done in logs (log-sum-exp): slow but cannot underflow."""
    log_a, log_b = np.log(hmm.transition), np.log(hmm.emission)
    log_alpha = np.log(hmm.initial) + log_b[:, x[0]]
    for t in range(1, len(x)):
        m = log_alpha.max()
        log_alpha = m + np.log(np.exp(log_alpha - m) @ hmm.transition) + log_b[:, x[t]]
    m = log_alpha.max()
    return m + math.log(np.exp(log_alpha - m).sum())


def test_forward_algorithm_is_stable_on_long_sequences():
    hmm = make_hmm(HMMSpec(n_states=8, vocab_size=16, zipf_exponent=3.0, seed=3))
    x = sample(hmm, 3000, np.random.default_rng(0))
    ll = log_likelihood(hmm, x)  # p(x) itself is far below the smallest float64
    assert ll < -800
    assert math.isclose(ll, log_space_forward(hmm, x), rel_tol=1e-9)


def test_parameters_are_distributions_and_initial_is_stationary():
    hmm = make_hmm(HMMSpec(n_states=16, vocab_size=20, seed=5))
    np.testing.assert_allclose(hmm.transition.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(hmm.emission.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(hmm.initial @ hmm.transition, hmm.initial, atol=1e-12)
    assert hmm.initial.min() >= 0 and math.isclose(hmm.initial.sum(), 1.0)
    # States rank the symbols differently but share the Zipf weights.
    assert not np.allclose(hmm.emission[0], hmm.emission[1])
    np.testing.assert_allclose(np.sort(hmm.emission[0]), np.sort(hmm.emission[1]))
    weights = 1.0 / np.arange(1, 21) ** HMMSpec.zipf_exponent
    np.testing.assert_allclose(np.sort(hmm.emission[0])[::-1], weights / weights.sum())


def test_stationary_distribution_of_a_known_chain():
    a = np.array([[0.9, 0.1], [0.3, 0.7]])
    np.testing.assert_allclose(stationary_distribution(a), [0.75, 0.25])


def test_optimal_loss_lies_between_zero_and_unigram_entropy():
    hmm = make_hmm(HMMSpec(n_states=16, vocab_size=24, transition_concentration=0.05, seed=0))
    x = sample(hmm, 100_000, np.random.default_rng(0))
    p = np.bincount(x, minlength=24) / x.size
    unigram = -(p[p > 0] * np.log(p[p > 0])).sum()
    loss = optimal_loss(hmm, x)
    assert 0 < loss < unigram - 0.05 < math.log(24)


def test_same_seed_same_text_and_other_seed_other_text():
    spec = HMMSpec(n_states=8, vocab_size=30, seed=7)
    a = text(make_hmm(spec), sample(make_hmm(spec), 5000, np.random.default_rng(1)))
    b = text(make_hmm(spec), sample(make_hmm(spec), 5000, np.random.default_rng(1)))
    c = text(make_hmm(spec), sample(make_hmm(spec), 5000, np.random.default_rng(2)))
    d = text(
        make_hmm(spec),
        sample(make_hmm(HMMSpec(n_states=8, vocab_size=30, seed=8)), 5000, np.random.default_rng(1)),
    )
    assert a == b and a != c
    assert len(a) == 5000 and set(a) <= set(alphabet(30))
    assert make_hmm(HMMSpec(seed=8)).transition.tolist() != make_hmm(HMMSpec(seed=7)).transition.tolist()
    assert d != a  # same uniforms, another language


def test_symbol_frequencies_match_stationary_emission_marginal():
    hmm = make_hmm(HMMSpec(n_states=8, vocab_size=12, transition_concentration=1.0, seed=4))
    n = 200_000
    counts = np.bincount(sample(hmm, n, np.random.default_rng(0)), minlength=12)
    expected = hmm.initial @ hmm.emission
    # Mixing is fast at concentration 1; allow 6 binomial sigmas (x3 for correlation).
    sigma = np.sqrt(n * expected * (1 - expected))
    assert np.all(np.abs(counts - n * expected) < 18 * sigma)
    np.testing.assert_allclose(counts / n, expected, atol=0.01)


def test_alphabet_order_and_limits():
    assert alphabet(4) == " \nab"
    assert alphabet(30)[28:] == "AB"
    full = alphabet(94 + 2)
    assert len(set(full)) == 96 and full.endswith("~")
    for bad in (1, 97):
        with pytest.raises(ValueError, match=f"vocab_size = {bad}"):
            alphabet(bad)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_states": 0}, "n_states"),
        ({"zipf_exponent": 0}, "zipf_exponent"),
        ({"transition_concentration": -1}, "transition_concentration"),
        ({"vocab_size": 200}, "vocab_size"),
        ({"n_components": 0}, "n_components"),
        ({"component_zipf_exponent": -1}, "component_zipf_exponent"),
        ({"switch_prob": 0}, "switch_prob"),
        ({"n_states": 64, "n_components": 65}, "4096 states in all"),
    ],
)
def test_bad_spec_is_one_line_value_error(kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        HMMSpec(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_symbols_rejected():
    hmm = make_hmm(HMMSpec(n_states=2, vocab_size=3))
    with pytest.raises(ValueError, match="expected ids in"):
        log_likelihood(hmm, np.array([0, 3]))
    with pytest.raises(ValueError, match="n_symbols"):
        sample(hmm, 0, np.random.default_rng(0))


def test_emission_noise_gives_the_same_language_with_a_higher_floor():
    clean, noisy = (make_hmm(HMMSpec(n_states=6, vocab_size=10, seed=3, emission_noise=p)) for p in (0.0, 0.2))
    np.testing.assert_array_equal(clean.transition, noisy.transition)
    np.testing.assert_allclose(noisy.emission, 0.8 * clean.emission + 0.02)
    symbols = sample(noisy, 20000, np.random.default_rng(0))
    assert optimal_loss(noisy, symbols) > optimal_loss(clean, sample(clean, 20000, np.random.default_rng(0)))


def test_mixture_is_block_diagonal_plus_a_switch_with_zipf_component_shares():
    spec = HMMSpec(n_states=3, vocab_size=6, n_components=4, component_zipf_exponent=1.5, switch_prob=0.05, seed=2)
    hmm = make_hmm(spec)
    assert hmm.n_states == 12
    np.testing.assert_allclose(hmm.transition.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(hmm.initial @ hmm.transition, hmm.initial, atol=1e-12)
    weights = 1.0 / np.arange(1, 5) ** 1.5
    shares = hmm.initial.reshape(4, 3).sum(axis=1)  # the time spent in each component
    np.testing.assert_allclose(shares, weights / weights.sum(), atol=1e-12)
    # Leaving a component happens only by a switch: off-block mass per row is ε (1 − w_own).
    blocks = np.kron(np.eye(4), np.ones((3, 3))).astype(bool)
    off = np.where(blocks, 0.0, hmm.transition).sum(axis=1)
    own = np.repeat(weights / weights.sum(), 3)
    np.testing.assert_allclose(off, 0.05 * (1 - own), atol=1e-12)


def test_one_component_mixture_is_the_single_hmm_and_the_forward_algorithm_holds_for_mixtures():
    single, one = make_hmm(HMMSpec(n_states=5, vocab_size=7, seed=4)), make_hmm(
        HMMSpec(n_states=5, vocab_size=7, seed=4, n_components=1, switch_prob=0.3))
    np.testing.assert_array_equal(single.transition, one.transition)
    np.testing.assert_array_equal(single.emission, one.emission)
    mixture = make_hmm(HMMSpec(n_states=2, vocab_size=4, n_components=3, transition_concentration=0.5, seed=1))
    x = sample(mixture, 5, np.random.default_rng(0))  # 6^5 = 7776 paths
    assert math.isclose(log_likelihood(mixture, x), math.log(brute_force_probability(mixture, x)), rel_tol=1e-10)


def test_window_optimal_loss_restarts_the_forward_algorithm_at_each_window():
    hmm = make_hmm(HMMSpec(n_states=4, vocab_size=8, n_components=3, switch_prob=0.1, seed=6))
    x = sample(hmm, 4 * 17, np.random.default_rng(3))
    windows = x.reshape(4, 17)
    # Each window's p(x_1..x_16 | x_0) = p(x_0..x_16) / p(x_0), both from the stationary start.
    by_window = [-(log_likelihood(hmm, w) - log_likelihood(hmm, w[:1])) for w in windows]
    assert math.isclose(window_optimal_loss(hmm, windows), sum(by_window) / (4 * 16), rel_tol=1e-12)
    # Seeing only a window costs information: its floor lies above the whole-past one.
    long = sample(hmm, 20001, np.random.default_rng(4))
    assert window_optimal_loss(hmm, long[:-1].reshape(-1, 8)) > optimal_loss(hmm, long)
    with pytest.raises(ValueError, match="expected"):
        window_optimal_loss(hmm, x[:5])
