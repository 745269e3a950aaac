"""benchmarks/study_speed.py in its quick mode: every part runs and prints its lines and summary. No timing
is asserted (the machine may be loaded); the numbers only have to be there and agree with each other."""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import study_speed  # noqa: E402


def fake_default_results(root):
    """Two cells of the default study as a finished run leaves them: metrics.json and the job's benchmark."""
    for model, flops in (("L2-d12-h2", 1.5e12), ("L2-d16-h2", 2.5e12)):
        run = root / "synthetic" / "runs" / model / "D524288" / "seed0"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"C": flops, "status": "ok"}))
        bench = root / "synthetic" / "benchmarks" / "train" / model / "D524288"
        bench.mkdir(parents=True)
        (bench / "seed0.tsv").write_text("s\th:m:s\tmax_rss\n20.0\t0:00:20\t100\n")
    return root


def test_quick_run_of_every_part_prints_its_lines_and_a_summary(tmp_path):
    results = fake_default_results(tmp_path / "results")
    out = tmp_path / "study_speed.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "study_speed.py"), "--quick",
                           "--default-results", str(results), "--default-wall", "100", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    summary = lines[lines.index("study_speed summary (2 cores; ratios against peers measured in this run)"):]
    names = [line.split(":")[0].strip() for line in summary[1:]]
    assert names == ["sine", "default", "fixed", "dag", "all parts"]
    assert any(line.startswith("  speedup loop / pipeline: ") and "(target >= 1.5x: " in line
               for line in lines)
    parts = json.loads(out.read_text())["parts"]
    assert list(parts) == list(study_speed.PARTS)

    sine = parts["sine"]
    assert sine["cells"] == 2 and sine["loop_s"] > 0 and sine["pipeline_s"] > 0
    assert sine["speedup"] == pytest.approx(sine["loop_s"] / sine["pipeline_s"])
    assert sine["met"] == (sine["speedup"] >= 1.5)
    # The blog's loop and the cells train the same models on the same samples: the same errors.
    assert sine["val_mse_max_rel_diff"] < 1e-3

    default = parts["default"]
    assert default["cells"] == 2 and default["flops"] == 4e12 and default["train_job_s"] == 40
    assert default["wall"] == "given (--default-wall)"
    assert default["share"] == pytest.approx(4e12 / default["peak_flops_per_core"] / (100 * 2))
    assert default["train_jobs_share"] == pytest.approx(4e12 / default["peak_flops_per_core"] / 40)

    fixed = parts["fixed"]
    for cell in ("token cell", "samples cell"):
        f = fixed[cell]
        assert f["steps"] > 0 and 0 < f["import_torch"] < f["start"] < f["total"]
        assert f["teardown"] >= 0 and f["ratio_to_import_torch"] == pytest.approx(
            f["total"] / fixed["import torch"]["total"])

    dag = parts["dag"]
    assert dag["cells"] >= 100
    assert dag["ratio_wall"] == pytest.approx(dag["grid_wall_s"] / dag["trivial_wall_s"])


def test_default_results_without_a_wall_give_the_training_jobs_share_only(tmp_path, capsys):
    result = study_speed.default_part(str(fake_default_results(tmp_path / "results")), None)
    assert result["wall"] == "not measured" and result["share"] is None and result["train_jobs_share"] > 0
    assert "  wall not measured (pass --default-wall)" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a default study's results"):
        study_speed.study_record(tmp_path)


def test_parts_are_checked_by_name():
    assert study_speed.parse_parts("sine, dag") == ["sine", "dag"]
    with pytest.raises(Exception, match="unknown parts \\['gpu'\\]: expected some of sine,default,fixed,dag"):
        study_speed.parse_parts("sine,gpu")
