"""Learning-rate schedules (cosine, warmup-stable-decay) and the data order that lets WSD cells branch."""

import math

import numpy as np
import pytest

from workflow_scripts.train.schedule import lr_at, make_schedule, window_order, wsd_lr_at


def test_wsd_warms_up_holds_the_peak_then_cools_down_as_one_minus_sqrt():
    # 100 steps, 10 of warmup, the last 20 in the cooldown (starting at t0 = 80), floor 0.1.
    s = make_schedule("wsd", 100, peak=2.0, min_ratio=0.1, warmup_steps=10, cooldown_frac=0.2)
    assert (s.warmup, s.cooldown, s.branch_step) == (10, 20, 80)
    lrs = [s.lr(t) for t in range(100)]
    assert lrs[:10] == pytest.approx([2.0 * (t + 1) / 10 for t in range(10)])  # linear warmup
    assert lrs[10:81] == [2.0] * 71  # stable, exactly the peak, through the cooldown's first step
    floor = 0.2
    for t in range(80, 100):  # Hägele et al. 2024: lr = floor + (peak - floor)(1 - sqrt((t - t0) / (T - t0)))
        assert lrs[t] == pytest.approx(floor + (2.0 - floor) * (1 - math.sqrt((t - 80) / 20)), rel=1e-12)
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))  # strictly decreasing cooldown
    assert s.lr(100) == pytest.approx(floor)  # reaches the floor when the last step ends
    # The decay is steepest at its start: (1 - sqrt) drops a third of the way in its first ninth.
    assert (lrs[80] - lrs[82]) > (lrs[97] - lrs[99])
    assert wsd_lr_at(100, 100, 1.0, 10, 0.0, 20) == 0.0  # with min_ratio 0, the paper's endpoint


def test_wsd_prefix_does_not_depend_on_the_cells_length():
    short = make_schedule("wsd", 40, 1.0, 0.1, warmup_steps=5, cooldown_frac=0.25)
    long = make_schedule("wsd", 400, 1.0, 0.1, warmup_steps=5, cooldown_frac=0.25)
    assert short.branch_step == 30 and long.branch_step == 300
    assert [short.lr(t) for t in range(30)] == [long.lr(t) for t in range(30)]
    assert short.lr(30) == long.lr(30) == 1.0 and short.lr(31) < 1.0


def test_wsd_edge_cases():
    none = make_schedule("wsd", 50, 1.0, 0.1, warmup_steps=5, cooldown_frac=0.0)  # no cooldown: constant
    assert none.branch_step == 50 and [none.lr(t) for t in range(5, 50)] == [1.0] * 45
    all_cooldown = make_schedule("wsd", 50, 1.0, 0.1, warmup_steps=5, cooldown_frac=1.0)
    assert all_cooldown.branch_step == 5  # the cooldown starts after the warmup at the earliest
    # A cell shorter than a fixed warmup stops inside it, at a longer cell's rates, and branches at its end.
    short, long = (make_schedule("wsd", n, 1.0, 0.1, warmup_steps=10) for n in (6, 100))
    assert short.branch_step == 6 and [short.lr(t) for t in range(6)] == [long.lr(t) for t in range(6)]


def test_cosine_is_unchanged_and_warmup_frac_applies_without_warmup_steps():
    s = make_schedule("cosine", 100, 1.0, 0.1, warmup_frac=0.1)
    assert s.warmup == 10 and [s.lr(t) for t in range(100)] == [lr_at(t, 100, 1.0, 10, 0.1) for t in range(100)]
    assert s.lr(99) == pytest.approx(0.1)  # cosine reaches its floor on the last step
    assert make_schedule("cosine", 100, 1.0, 0.1, warmup_frac=0.1, warmup_steps=3).warmup == 3
    with pytest.raises(ValueError, match=r"schedule 'linear': expected one of \['cosine', 'wsd', 'constant'\]"):
        make_schedule("linear", 100, 1.0, 0.1)


def test_a_smaller_budgets_windows_are_a_prefix_of_a_larger_ones():
    small, large = window_order(30, 1, seed=4, stream_windows=500), window_order(200, 1, seed=4, stream_windows=500)
    assert np.array_equal(small, large[:30])
    assert set(large) < set(range(500)) and len(set(large)) == 200  # drawn from the whole split, no repeats
    assert not np.array_equal(large, window_order(200, 1, seed=5, stream_windows=500))
    twice = window_order(30, 2, seed=4, stream_windows=500)
    assert np.array_equal(twice[:30], small) and sorted(twice[30:]) == sorted(small)  # epoch 2: same windows
