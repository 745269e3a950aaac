"""Paper tables: fits.json into fits.csv (every parameter) and fits.tex (booktabs exponents)."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import SMALL_GRID
from workflow_scripts.analysis.fit.experiment import fit_experiment
from workflow_scripts.analysis.tables import COLUMNS, fits_table, fits_tex, main


@pytest.fixture(scope="module")
def fits():
    """fits.json of an exact L(N,D) grid with a few bootstrap resamples, L(D) forced to skip."""
    rows = [{"experiment": "t", "model": f"N{n:.0f}", "data": f"D{d:.0f}", "seed": 0, "status": "ok",
             "N": n, "N_nonembedding": n, "D": d, "C": 6 * n * d,
             "val_loss": (1.8 + 80 * n ** -0.34 + 200 * d ** -0.28) * np.exp(0.002 * np.sin(n * d))}
            for n in (1e4, 3e4, 1e5, 3e5, 1e6) for d in (1e5, 1e6)]
    return json.loads(json.dumps(fit_experiment(pd.DataFrame(rows), n_boot=20, parametric_grid=SMALL_GRID)))


def test_csv_one_row_per_law_and_parameter(fits):
    table = fits_table(fits)
    assert list(table.columns) == COLUMNS
    # L(D) skipped: 2 data sizes; Kaplan's L(N,D) and approach 1 by default.
    assert set(table.law) == {"L(N)", "L(C)", "L(N,D)", "compute_optimal", "kaplan_L(N,D)", "approach1"}
    kaplan = table[table.law == "kaplan_L(N,D)"].set_index("parameter")
    assert list(kaplan.index) == ["N_c", "D_c", "alpha_N", "alpha_D"]
    assert table[table.law == "approach1"].parameter.tolist() == ["a", "b", "k_N", "k_D"]
    ln = table[(table.law == "L(N)") & (table.parameter == "alpha")].iloc[0]
    assert ln.value == pytest.approx(fits["laws"]["L(N)"]["params"]["alpha"])
    assert [ln.ci_low, ln.ci_high] == pytest.approx(fits["laws"]["L(N)"]["ci"]["alpha"])
    assert ln.n_points == 5 and ln.ci_level == 0.95
    assert table[table.law == "L(N,D)"].parameter.tolist() == ["E", "A", "B", "alpha", "beta"]
    opt = table[table.law == "compute_optimal"].set_index("parameter")
    assert list(opt.index) == ["a", "b"] and opt.value.sum() == pytest.approx(1.0)
    assert opt.loc["a", "value"] == pytest.approx(fits["compute_optimal"]["a"]) and opt.n_points.iloc[0] == 10


def test_tex_is_booktabs_with_exponents_and_intervals(fits):
    tex = fits_tex(fits)
    lines = tex.splitlines()
    assert lines[0].startswith(r"\begin{tabular}") and lines[-1] == r"\end{tabular}"
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    alpha, (low, high) = fits["laws"]["L(N)"]["params"]["alpha"], fits["laws"]["L(N)"]["ci"]["alpha"]
    row = next(line for line in lines if line.startswith("$L(N)$"))
    assert rf"${alpha:.3g}\,[{low:.3g}, {high:.3g}]$" in row
    assert r"$\beta$" in tex and "$L(D)$" in tex.split(r"\midrule")[-1]  # the skipped law is named
    assert r"Kaplan $L(N,D)$ & $\alpha_N$" in tex and r"approach 1" in tex
    assert "e-" not in tex and "nan" not in tex.lower()  # 1e-5 is written 1\times10^{-5}


def test_cli_writes_both_atomically(fits, tmp_path, capsys):
    (tmp_path / "fits.json").write_text(json.dumps(fits))
    out = tmp_path / "out"
    main(["--fits", str(tmp_path / "fits.json"), "--csv", str(out / "fits.csv"), "--tex", str(out / "fits.tex")])
    assert sorted(p.name for p in out.iterdir()) == ["fits.csv", "fits.tex"]
    back = pd.read_csv(out / "fits.csv")
    assert len(back) == len(fits_table(fits)) and "L(N,D)" in set(back.law)
    assert "parameters ->" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="error: .*missing.json"):
        main(["--fits", str(tmp_path / "missing.json"), "--csv", str(out / "x.csv"), "--tex", str(out / "x.tex")])


def test_no_intervals_without_bootstrap(fits):
    bare = json.loads(json.dumps(fits))
    bare["laws"]["L(N)"]["ci"] = {"E": None, "A": None, "alpha": None}
    row = next(line for line in fits_tex(bare).splitlines() if line.startswith("$L(N)$"))
    assert r"\," not in row.split("&")[2]
    assert fits_table(bare).query("law == 'L(N)'").ci_low.isna().all()
