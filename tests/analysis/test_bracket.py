import json
import math

import numpy as np
import pytest

from workflow_scripts.analysis import bracket
from workflow_scripts.analysis.fit import isoflops


def chinchilla(n, c):
    d = c / (6 * n)
    return 1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28  # Hoffmann et al. 2022, Eq. 10


def profile(c, n_opt_shift, count=5):
    """Sizes spanning 25x around a shifted N_opt of Chinchilla's law at budget c."""
    sizes = np.geomspace(0.2, 5, count) * 0.6 * (c / 6) ** 0.45 * n_opt_shift
    return sizes, np.full(count, c), chinchilla(sizes, c)


def test_vertex_sides_say_where_each_optimum_lies():
    rows = [profile(1e18, 1.0), profile(1e19, 0.02), profile(1e20, 50.0)]
    n, c, loss = (np.concatenate(parts) for parts in zip(*rows))
    sides = isoflops.vertex_sides(n, c, loss)
    assert [s["side"] for s in sides] == ["inside", "above", "below"]
    inside = sides[0]
    assert inside["N_min"] < inside["N_opt"] < inside["N_max"] and inside["n_sizes"] == 5
    # Two sizes have no parabola: the lower loss points the way; one size points nowhere.
    two = isoflops.vertex_sides([1e6, 2e6], [1e18, 1e18], [2.0, 1.9])
    assert two[0]["N_opt"] is None and two[0]["side"] == "above"
    assert isoflops.vertex_sides([1e6, 2e6], [1e18, 1e18], [1.8, 1.9])[0]["side"] == "below"
    assert isoflops.vertex_sides([1e6], [1e18], [1.8])[0]["side"] is None


def write_metrics(folder, rows):
    paths = []
    for i, (n, c, loss, status) in enumerate(rows):
        path = folder / f"cell{i}.json"
        path.write_text(json.dumps({"N_nonembedding": n, "C_budget": c, "val_loss": loss, "status": status}))
        paths.append(str(path))
    return paths


def test_a_round_record_names_the_sides_to_extend(tmp_path):
    sizes, budgets, losses = profile(1e19, 0.02)
    paths = write_metrics(tmp_path, [(*row, "ok") for row in zip(sizes, budgets, losses)]
                          + [(1e9, 1e19, math.inf, "diverged")])
    out = tmp_path / "round0.json"
    bracket.main(["--experiment", "iso", "--round", "0", "--out", str(out), *paths])
    record = json.loads(out.read_text())
    assert record["extend"] == ["above"] and record["n_cells"] == 6 and record["n_usable"] == 5
    assert record["round"] == 0 and record["provenance"]["config"]["metrics"] == paths
    with pytest.raises(SystemExit, match="no usable IsoFLOP cell among 1"):
        bracket.main(["--experiment", "iso", "--round", "1", "--out", str(tmp_path / "r1.json"), paths[-1]])
    assert not (tmp_path / "r1.json").exists()


def test_the_fits_section_states_whether_the_limit_was_reached():
    records = [{"round": 0, "budgets": [], "extend": ["above"]}, {"round": 1, "budgets": [], "extend": ["above"]}]
    outside = {"budgets": [{"C": 1e19, "minimum_inside_range": False}, {"C": 1e20, "minimum_inside_range": True}]}
    reached = bracket.section(records, ["L2-d64-h2"], 2, outside)
    assert reached["limit_reached"] and reached["vertices_outside"] == [1e19]
    assert reached["rounds_run"] == 2 and reached["added_models"] == ["L2-d64-h2"]
    bracketed = bracket.section(records[:1] + [{"round": 1, "budgets": [], "extend": []}], ["L2-d64-h2"], 2,
                                {"budgets": [{"C": 1e19, "minimum_inside_range": True}]})
    assert not bracketed["limit_reached"] and bracketed["vertices_outside"] == []
    assert (reached["ended"], bracketed["ended"]) == ("rounds_limit", "bracketed")
    stalled = bracket.section(records[:1], [], 2, outside)  # round 0's sizes admitted by no budget
    assert stalled["limit_reached"] and stalled["ended"] == "no_cell_admitted"


def test_a_swept_grid_brackets_the_selected_settings_only(tmp_path):
    # The tuned profile (x1) has its vertex inside; the untuned settings (x0.1) are worse, most of
    # all at the small sizes, so a parabola through every point would lean above.
    sizes, budgets, losses = profile(1e19, 1.0)
    rows = []
    for i, (n, c, loss) in enumerate(zip(sizes, budgets, losses)):
        for setting, extra in (("lr=x1", 0.0), ("lr=x0.1", 2.0 / (i + 1))):
            rows.append({"experiment": "iso", "model": f"m{i}", "data": "C1e19", "seed": 0, "setting": setting,
                         "status": "ok", "N_nonembedding": n, "C_budget": c, "D": c / (6 * n),
                         "val_loss": loss + extra})
    paths = []
    for i, row in enumerate(rows):
        path = tmp_path / f"cell{i}.json"
        path.write_text(json.dumps(row))
        paths.append(str(path))
    record = bracket.round_record("iso", 0, paths)
    assert record["n_usable"] == 5 and record["budgets"][0]["side"] == "inside" and record["extend"] == []
