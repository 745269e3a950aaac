"""IsoFLOP profiles (Chinchilla approach 2): ground truth, skipped budgets, real data."""


import numpy as np
import pytest

from workflow_scripts.analysis.fit.isoflops import fit_isoflops, parabola_minimum, read_curves
from tests.helpers import SHARED_DATA

CURVES = SHARED_DATA / "isoflops_curves.json"


def profiles(a=0.52, k=0.1, seed=0, sigma=0.002, budgets=(1e18, 1e19, 1e20, 1e21), sizes=7):
    """Losses parabolic in log N around N_opt = k·C^a, flatter and lower at larger budgets."""
    rng = np.random.default_rng(seed)
    n, c, loss = [], [], []
    for budget in budgets:
        n_opt = k * budget ** a
        for x in np.log(n_opt) + np.linspace(-1.5, 1.5, sizes):
            n.append(np.exp(x))
            c.append(budget)
            loss.append(2.0 + 30 * budget ** -0.08 + 0.1 * (x - np.log(n_opt)) ** 2 + rng.normal(0, sigma))
    return np.array(n), np.array(c), np.array(loss)


def test_recovers_known_exponent_inside_interval():
    n, c, loss = profiles()
    fit = fit_isoflops(n, c, loss, n_boot=200, seed=0)
    assert fit["a"] == pytest.approx(0.52, abs=0.01) and fit["a"] + fit["b"] == pytest.approx(1.0)
    assert fit["ci"]["a"][0] <= 0.52 <= fit["ci"]["a"][1]
    assert fit["ci"]["b"][0] <= 0.48 <= fit["ci"]["b"][1]
    assert fit["k_N"] == pytest.approx(0.1, rel=0.3)
    for row in fit["budgets"]:
        assert row["N_opt"] == pytest.approx(0.1 * row["C"] ** 0.52, rel=0.05)
        assert row["D_opt"] == pytest.approx(row["C"] / (6 * row["N_opt"]))
        assert row["minimum_inside_range"] and row["n_runs"] == 7
    assert fit["skipped_budgets"] == [] and fit["n_bootstrap_failed"] == 0


def test_parabola_minimum_of_exact_parabola():
    x = np.linspace(0, 4, 5)
    assert parabola_minimum(x, 3 + 0.5 * (x - 1.7) ** 2)[0] == pytest.approx(1.7)
    assert parabola_minimum(x, 3 - 0.5 * (x - 1.7) ** 2) is None  # concave: no minimum


def test_budgets_without_a_minimum_are_skipped_with_reasons():
    n, c, loss = profiles()
    keep = ~((c == 1e18) & (n > np.median(n[c == 1e18])))  # 1e18 keeps only 4 of its 7 sizes: fine
    few = (c == 1e19) & (np.arange(n.size) % 7 > 1)  # 1e19 keeps 2 sizes: no parabola
    concave = c == 1e20
    loss = np.where(concave, 5.0 - 0.1 * (np.log(n) - np.log(n[concave]).mean()) ** 2, loss)
    fit = fit_isoflops(n[keep & ~few], c[keep & ~few], loss[keep & ~few], n_boot=20)
    reasons = {row["C"]: row["reason"] for row in fit["skipped_budgets"]}
    assert set(reasons) == {1e19, 1e20}
    assert "2 distinct N" in reasons[1e19] and "not convex" in reasons[1e20]
    assert len(fit["budgets"]) == 2
    alone = fit_isoflops(n[c == 1e21], c[c == 1e21], loss[c == 1e21], n_boot=5)
    assert set(alone) == {"skipped", "skipped_budgets"} and "need 2" in alone["skipped"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="C has value 0.0 at row 1"):
        fit_isoflops([1e6, 2e6, 3e6], [1e18, 0, 1e18], [3, 2, 3])


@pytest.mark.skipif(not CURVES.is_file(), reason=f"real data {CURVES} absent")
def test_real_isoflop_grid():
    """72 real runs: 9 budgets from 6e18 to 3e21 FLOPs, 8 sizes each."""
    curves = read_curves(CURVES)
    fit = fit_isoflops(curves["N"], curves["C"], curves["loss"], n_boot=200, seed=0)
    assert len(fit["budgets"]) == 9 and fit["skipped_budgets"] == []
    assert all(row["minimum_inside_range"] for row in fit["budgets"])
    # The minima grow with compute and these runs put a near Chinchilla's ≈ 0.5 (a ≈ 0.51).
    n_opt = [row["N_opt"] for row in sorted(fit["budgets"], key=lambda r: r["C"])]
    assert np.all(np.diff(n_opt) > 0)
    assert 0.45 < fit["a"] < 0.58 and fit["a"] + fit["b"] == pytest.approx(1.0)
    assert fit["ci"]["a"][0] <= fit["a"] <= fit["ci"]["a"][1]
    assert fit["ci"]["a"][1] - fit["ci"]["a"][0] < 0.1
