"""End-to-end: the real workflow through snakemake on tiny configs in a temporary folder."""

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import REPO, TINYSHAKESPEARE, planned_cells, write_config
from workflow_scripts.data import synthetic
from workflow_scripts.data.sources import read_split
from workflow_scripts.plan.config import load_config, validate_config
from workflow_scripts.plan.grid import expand_grid

pytestmark = pytest.mark.slow

METRIC_KEYS = {"experiment", "model", "data", "seed", "status", "N", "N_nonembedding", "D", "C", "C_6ND",
               "val_loss", "val_loss_best", "optimal_loss", "steps", "wall_time_s", "tokens_per_s", "provenance"}


def check_study_outputs(workdir, config, dataset, tokenizer):
    """Every output of every stage exists and honours its contract."""
    data = workdir / "results" / "data" / dataset
    for split in ("train", "val"):  # the splits training reads
        meta = json.loads((data / tokenizer / f"{split}.json").read_text())
        size = (data / tokenizer / f"{split}.bin").stat().st_size
        assert meta["n_tokens"] * (2 if meta["dtype"] == "uint16" else 4) == size
    for experiment in config["experiments"]:
        out = workdir / "results" / experiment
        cells = [c for c in expand_grid(validate_config(config)) if c.experiment == experiment]
        for cell in cells:
            run = out / "runs" / cell.model / cell.data / cell.seed_name
            metrics = json.loads((run / "metrics.json").read_text())
            assert METRIC_KEYS <= metrics.keys()
            assert metrics["status"] == "ok" and metrics["D"] <= cell.data_size
            assert metrics["provenance"]["config"]["tokens"] == cell.data_size
            curve = pd.read_csv(run / "curve.csv")
            assert list(curve.columns) == ["step", "tokens", "flops", "train_loss", "eval_loss", "lr", "transfer_loss",
                                           "noise_scale"]
            assert metrics["test_loss"] > 0 and metrics["transfer_loss"] is None  # a test split, no transfer set
            assert curve["eval_loss"].iloc[-1] < curve["eval_loss"].iloc[0]  # it learned something
        runs = pd.read_csv(out / "runs.csv")
        assert len(runs) == len(cells)
        curves = pd.read_parquet(out / "curves.parquet")
        assert list(curves.columns) == ["experiment", "model", "data", "seed", "N", "N_nonembedding", "D",
                                        "status", "step", "tokens", "flops", "eval_loss", "train_loss", "lr",
                                        "noise_scale"]
        assert curves.groupby(["model", "data", "seed"]).ngroups == len(cells)
        summary = pd.read_csv(out / "cells_summary.csv")
        assert summary["n_seeds"].sum() == len(cells)
        fits = json.loads((out / "fits.json").read_text())
        assert set(fits["laws"]) >= {"L(N)", "L(D)", "L(C)"}
        table = pd.read_csv(out / "fits.csv")
        assert {"law", "parameter", "value", "ci_low", "ci_high", "n_points"} <= set(table.columns)
        assert set(table["law"]) == {law for law, entry in fits["laws"].items() if "skipped" not in entry} | (
            {"compute_optimal"} if fits["compute_optimal"].get("a") is not None else set())
        tex = (out / "fits.tex").read_text()
        assert r"\toprule" in tex and r"\bottomrule" in tex and r"\alpha" in tex
        for name in ("loss_vs_N", "loss_vs_D"):
            assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
            assert (out / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    return fits


def test_synthetic_study_end_to_end(tiny_config, tmp_path, run_snakemake):
    config_path = write_config(tmp_path / "tiny.yaml", tiny_config)
    result = run_snakemake(tmp_path, "--cores", "2", "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    fits = check_study_outputs(tmp_path, tiny_config, "synthetic", "char")
    optimal = fits["optimal_loss"]
    assert optimal is not None and 0 < optimal < 3
    law = fits["laws"]["L(N)"]
    assert "params" in law, law
    runs = pd.read_csv(tmp_path / "results" / "tiny" / "runs.csv")
    assert (runs["val_loss"] > optimal).all()  # no model beats the Bayes-optimal predictor

    # Nothing is re-run when nothing changed.
    again = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config_path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # The HTML report gathers the figures and tables of the finished run.
    report = tmp_path / "results" / "report.html"
    made = run_snakemake(tmp_path, "--report", str(report), "--configfile", str(config_path))
    assert made.returncode == 0 and "loss_vs_N.png" in report.read_text(), made.stderr[-3000:]

    # A new seed adds exactly its cells; the finished ones stay.
    tiny_config["experiments"]["tiny"]["seeds"] = [0, 1]
    write_config(config_path, tiny_config)
    dry = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(config_path))
    exp = tiny_config["experiments"]["tiny"]
    added = planned_cells(dry.stdout)
    assert len(added) == len(exp["models"]) * len(exp["data_sizes"]) and all(c.endswith("/seed1") for c in added)


def test_default_language_on_a_smaller_grid_judges_e_against_its_exact_floor(tmp_path, run_snakemake):
    """The default study's language and model family, shrunk: the floor of the evaluation windows
    is the generator's exact one, no cell beats it, and each law's E is judged against it."""
    config = load_config(REPO / "config" / "config.yaml")
    config["datasets"]["synthetic"]["symbols"] = {"train": 140000, "val": 20000, "test": 5000}
    experiment = config["experiments"]["synthetic"]
    experiment["models"] = experiment["models"][:3]
    experiment["data_sizes"] = [16384, 49152, 131072]
    experiment["training"] = {**experiment["training"], "eval_tokens": 4096, "eval_points": 2}
    experiment["analysis"] = {"bootstrap": 50, "laws": ["L(N)", "L(D)", "L(C)", "L(N,D)"]}
    config_path = write_config(tmp_path / "default-small.yaml", config)
    result = run_snakemake(tmp_path, "--cores", "2", "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]

    raw = tmp_path / "results" / "data" / "synthetic" / "raw"
    hmm = synthetic.make_hmm(synthetic.HMMSpec(**config["datasets"]["synthetic"]["hmm"]))
    symbols = np.array([hmm.alphabet.index(c) for c in read_split(raw / "val.txt")])
    context = experiment["model"]["context"]
    windows = symbols[:4096 // context * context + 1]
    windows = np.stack([windows[i:i + context + 1] for i in range(0, 4096 // context * context, context)])
    floor = synthetic.window_optimal_loss(hmm, windows)
    fits = json.loads((tmp_path / "results" / "synthetic" / "fits.json").read_text())
    assert fits["optimal_loss"] == pytest.approx(floor, rel=1e-12)
    whole_past = json.loads((raw / "source.json").read_text())["splits"]["val"]["optimal_loss_nats_per_char"]
    assert abs(floor / whole_past - 1) < 0.1  # the same language's floor, less what lost context is worth
    runs = pd.read_csv(tmp_path / "results" / "synthetic" / "runs.csv")
    assert (runs["val_loss"] > floor).all()  # no model beats the Bayes-optimal predictor of its windows
    tolerance = fits["provenance"]["config"]["quality"]["max_floor_error"]
    for law, entry in fits["laws"].items():
        if "E" not in entry.get("params", {}):
            continue
        e, (low, high) = entry["params"]["E"], entry["ci"]["E"]
        flagged = any("the generator's optimal loss" in r for r in entry["quality"]["reasons"])
        below = e < floor * (1 - tolerance) and high < floor
        off = law in ("L(N,D)", "L(C)") and abs(e / floor - 1) > tolerance and not low <= floor <= high
        assert flagged == (below or off), (law, e, floor, entry["quality"])


@pytest.mark.skipif(not TINYSHAKESPEARE.exists(), reason=f"{TINYSHAKESPEARE} is absent (real data for tests)")
def test_tinyshakespeare_through_local_source_and_bpe(tmp_path, run_snakemake):
    config = {
        "datasets": {"shakespeare": {"source": "local", "path": str(TINYSHAKESPEARE), "split": {"val": 0.05, "test": 0.05}}},
        "tokenizers": {"bpe": {"kind": "bpe", "vocab_size": 512}},
        "experiments": {
            "shakespeare": {
                "dataset": "shakespeare",
                "tokenizer": "bpe",
                "model": {"context": 32},
                "models": [{"n_layer": 1, "d_model": 16, "n_head": 2}, {"n_layer": 1, "d_model": 32, "n_head": 2},
                           {"n_layer": 1, "d_model": 48, "n_head": 2}],
                "data_sizes": [8192, 32768],
                "training": {"batch_size": 8, "eval_tokens": 4096, "eval_points": 4},
                "analysis": {"bootstrap": 50},
            }
        },
    }
    config_path = write_config(tmp_path / "shakespeare.yaml", config)
    result = run_snakemake(tmp_path, "--cores", "2", "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    fits = check_study_outputs(tmp_path, config, "shakespeare", "bpe")
    assert fits["optimal_loss"] is None  # unknown for real text
    meta = json.loads((tmp_path / "results/data/shakespeare/bpe/train.json").read_text())
    assert meta["vocab_size"] == 512 and meta["dtype"] == "uint16"


def test_lint_is_clean():
    from tests.helpers import snakemake

    result = snakemake(REPO, "--lint")
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout


def test_default_study_dry_run(tmp_path, run_snakemake):
    result = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(REPO / "config" / "config.yaml"))
    assert result.returncode == 0, result.stderr[-2000:]
    cells = expand_grid(load_config(REPO / "config" / "config.yaml"))
    assert sorted(planned_cells(result.stdout)) == sorted(
        f"results/{c.experiment}/runs/{c.model}/{c.data}/{c.seed_name}" for c in cells)
