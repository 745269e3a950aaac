"""benchmarks/seed_stacking.py in its quick mode: both ways train the same parameters (the benchmark
checks it before timing) and every width prints its row. No timing is asserted (the machine may be loaded)."""

import json
import subprocess
import sys

from tests.helpers import REPO


def test_quick_run_checks_the_stacked_step_and_prints_a_row_per_width(tmp_path):
    out = tmp_path / "stacking.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "seed_stacking.py"), "--quick",
                           "--json", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["d_model"] for r in rows] == [12, 24]
    for row in rows:
        assert row["max_relative_difference"] <= 1e-4
        assert row["speedup"] > 0 and row["separate_mfu"] > 0
    assert len([line for line in done.stdout.splitlines() if "stacked / separate" in line]) == 2


def test_a_stacked_step_that_differs_from_the_separate_one_stops_the_benchmark():
    # A tolerance no float step can meet: the check must fire and name the difference.
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "seed_stacking.py"), "--quick",
                           "--widths", "1", "--tolerance", "0"], capture_output=True, text=True, timeout=300,
                          cwd=REPO)
    assert done.returncode != 0
    assert "the stacked losses and gradients differ from the separate ones by" in done.stderr
