"""benchmarks/gpu_check.py without a GPU: it parses, plans, writes its summaries, skips every CUDA part with
its reason, and its parts' logic runs end to end in the --device cpu smoke mode (real processes, real
Snakemake, real SIGKILL), so the device run only has to bring the GPU."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from tests.helpers import REPO, snakemake
from workflow_scripts.plan.config import validate_config
from workflow_scripts.plan.grid import expand_grid

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402
import gpu_check_cells  # noqa: E402

SETTINGS = yaml.safe_load(gpu_check.SETTINGS.read_text())
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the parts would run")


def check(out, *args, settings=None):
    """Run the command as the device would; its exit status and summary."""
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), str(out), *args]
    if settings is not None:
        path = out.parent / "settings.yaml"
        path.write_text(yaml.safe_dump(settings))
        command += ["--settings", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    summary = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").exists() else None
    return done, summary


@no_cuda
def test_without_cuda_every_part_is_skipped_with_its_reason(tmp_path):
    done, summary = check(tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert list(summary["parts"]) == list(gpu_check.PARTS)
    reason = f"CUDA is not available: torch {torch.__version__} "
    for letter, part in summary["parts"].items():
        assert part["status"] == "skipped" and part["skipped"].startswith(reason), (letter, part)
        assert f"{letter} ({part['name']}): skipped: {reason}" in done.stdout
    page = (tmp_path / "out" / "gpu_check.md").read_text()
    assert page.count("| skipped: CUDA is not available") == len(gpu_check.PARTS)
    assert summary["environment"]["cuda_available"] is False


def test_without_snakemake_its_parts_are_skipped_and_the_rest_still_runs(tmp_path):
    """As on the device image before Snakemake's wheels come (no snakemake, no jsonschema)."""
    hide = ("import runpy, sys; sys.modules.update(snakemake=None, jsonschema=None); "
            f"sys.argv = ['gpu_check.py', {str(tmp_path / 'out')!r}, '--device', 'cpu', '--parts', 'a,e']; "
            "runpy.run_path('benchmarks/gpu_check.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    parts = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["parts"]
    for part in parts.values():
        assert part["status"] == "skipped" and part["skipped"].startswith("snakemake is not installed for ")
        assert "--wheels snakemake" in part["skipped"]


def test_parts_parse_as_letters_or_names():
    assert gpu_check.parse_parts("a,throughput, e") == ["a", "b", "e"]
    with pytest.raises(Exception, match=r"part 'f': expected letters or names of a \(study\), b \(throughput\)"):
        gpu_check.parse_parts("a,f")


def test_settings_without_a_part_are_refused_in_one_line_before_anything_runs(tmp_path):
    done, summary = check(tmp_path / "out", "--parts", "b,d", settings={"parts": {"throughput": {}}})
    assert done.returncode == 2 and summary is None
    assert done.stderr.strip().splitlines()[-1].endswith(
        "settings.yaml: no parts.resume: expected the sections of gpu_check.yaml")


def test_summary_is_written_as_json_and_markdown(tmp_path):
    summary = {"device": "cuda", "started": "2026-12-02T00:00:00+00:00",
               "environment": {"gpu": "NVIDIA H200", "torch": "2.11", "cuda_build": "13.0", "python": "3.12",
                               "cpus": 16, "snakemake": None, "transformers": "5.17"},
               "parts": {"a": {"name": "study", "status": "skipped", "skipped": "snakemake is not installed"},
                         "b": {"name": "throughput", "status": "failed", "failed_checks": ["mfu"], "seconds": 2.5,
                               "rows": [{"model": "ours_eager", "tokens_per_s": 1.5e5, "mfu": 0.4123}],
                               "checks": {"mfu": False}}}}
    gpu_check.write_summary(tmp_path, summary)
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == summary
    page = (tmp_path / "gpu_check.md").read_text().splitlines()
    assert "| a. study | skipped: snakemake is not installed | 0.0 |" in page
    assert "## b. throughput: failed" in page
    assert "| model | tokens_per_s | mfu |" in page and "| ours_eager | 1.5e+05 | 0.4123 |" in page
    assert "- checks: mfu False" in page
    assert not any("## a." in line for line in page)  # a skipped part has its line in the table only


def test_study_configs_validate_and_dry_run_with_cells_on_the_gpu(tmp_path):
    study, settings = SETTINGS["study"], SETTINGS["parts"]["study"]
    for smoke in (False, True):
        for gpu in (1, 0):
            config = validate_config(gpu_check_cells.study_config(study, settings, smoke, gpu))
            assert len(expand_grid(config)) == 6
            assert config["experiments"]["gpucheck"]["resources"]["gpu"] == gpu
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(gpu_check_cells.study_config(study, settings, False, 1)))
    dry = snakemake(tmp_path, "-n", "-p", "--cores", "4", "--resources", "gpu=1", "--configfile", str(path))
    assert dry.returncode == 0, dry.stderr
    commands = [line for line in dry.stdout.splitlines() if "workflow_scripts.train.token_cell" in line]
    assert len(commands) == 6 and all("--gpus 1" in c and "--device" not in c for c in commands)  # auto: CUDA


def test_wheels_name_what_the_device_image_lacks():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--wheels", "snakemake"],
                          capture_output=True, text=True, timeout=60, check=True)
    import snakemake as snakemake_package

    assert f" snakemake=={snakemake_package.__version__}" in done.stdout
    assert "--python-version 3.12" in done.stdout
    assert "jsonschema==" in done.stdout and "pyyaml==" not in done.stdout  # the image has pyyaml


def test_speed_parts_run_on_the_cpu_and_say_what_they_left_out(tmp_path):
    done, summary = check(tmp_path / "out", "--device", "cpu", "--parts", "b,c")
    assert done.returncode == 0, done.stdout + done.stderr
    b, c = summary["parts"]["b"], summary["parts"]["c"]
    assert b["status"] == c["status"] == "ok"
    assert [row["model"] for row in b["rows"]][0] == "ours_eager" and b["rows"][0]["tokens_per_s"] > 0
    assert b["errors"]["ours_compiled"].startswith("skipped: compile off")
    if summary["environment"]["transformers"] is None:
        assert b["errors"]["hf_eager"].startswith("skipped: transformers is not installed")
    assert c["graph"] == "skipped: CUDA graphs need a CUDA device" and c["synced_ms"] > 0


def test_a_part_that_breaks_is_failed_with_its_error_and_the_command_exits_1(tmp_path):
    settings = yaml.safe_load(gpu_check.SETTINGS.read_text())
    settings["parts"]["resume"]["smoke"]["kill_at_step"] = 10**6  # after the cell's last step
    done, summary = check(tmp_path / "out", "--device", "cpu", "--parts", "d", settings=settings)
    assert done.returncode == 1
    part = summary["parts"]["d"]
    assert part["status"] == "failed" and "exited with status 0, expected -9 (SIGKILL)" in part["error"]


@pytest.mark.slow
def test_resume_part_kills_a_cell_and_it_resumes_bitwise_on_the_cpu(tmp_path):
    done, summary = check(tmp_path / "out", "--device", "cpu", "--parts", "resume")
    part = summary["parts"]["d"]
    assert done.returncode == 0 and part["status"] == "ok", part
    run, = part["runs"]
    assert run["algorithms"] == "default" and run["resumed_from_steps"] == [50]
    assert "resuming from checkpoint" in run["resume_message"] and "at step 50" in run["resume_message"]
    assert run["deterministic_run_to_run"] and run["bitwise_equal"] and run["abs_diff"] == 0


@pytest.mark.slow
def test_slots_part_keeps_two_studies_off_one_device(tmp_path):
    done, summary = check(tmp_path / "out", "--device", "cpu", "--parts", "e")
    part = summary["parts"]["e"]
    assert done.returncode == 0 and part["status"] == "ok", part
    first, second = part["cells"]
    assert second["train_start"] >= first["train_end"] and all(c["gpus_flag"] == 1 for c in part["cells"])


@pytest.mark.slow
def test_study_part_runs_both_studies_end_to_end_and_compares_them(tmp_path):
    done, summary = check(tmp_path / "out", "--device", "cpu", "--parts", "a")
    part = summary["parts"]["a"]
    assert done.returncode == 0 and part["status"] == "ok", part
    assert len(part["cells"]) == 6 and all(row["device"] == "cpu" and row["finite"] for row in part["cells"])
    # Both trained in fp32 on one CPU: the same numbers.
    assert all(row["rel_diff"] == 0 for row in part["cells"])
