"""Aggregation: metrics.json files into one tidy runs.csv."""

import json

import pandas as pd
import pytest

from workflow_scripts.analysis.aggregate import (CELL_COLUMNS, CURVE_COLUMNS, collect_curves, collect_runs, flatten, main,
                                        summarize_cells, write_runs)


def metrics(model="L2-d32-h2", data="D65536", seed=0, N=30000, D=65536, status="ok", **over):
    record = {
        "schema_version": 1, "experiment": "default", "model": model, "data": data, "seed": seed,
        "status": status,
        "model_config": {"n_layer": 2, "d_model": 32, "n_head": 2, "d_ff": 128, "context": 64, "vocab_size": 50},
        "N": N, "N_nonembedding": N - 5424, "D": D, "C": 6.0 * N * D, "C_6ND": 6.0 * N * D,
        "val_loss": 2.1 if status == "ok" else None, "optimal_loss": 1.85, "steps": 64,
        "provenance": {"config": {"lr": 3e-3, "nested": {"betas": [0.9, 0.95]}},
                       "packages": {"torch": "2.13.0", "numpy": "2.4.0"}, "python": "3.11.7",
                       "git_revision": "abc", "device": "cpu"},
    }
    record.update(over)
    return record


def write(tmp_path, name, record):
    path = tmp_path / name / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return path


def test_flatten_nests_with_dots_and_stores_config_and_lists_as_json():
    flat = flatten(metrics(tags=["a", "b"]))
    assert flat["model_config.n_layer"] == 2
    assert flat["provenance.packages.torch"] == "2.13.0"
    assert json.loads(flat["provenance.config"]) == {"lr": 3e-3, "nested": {"betas": [0.9, 0.95]}}
    assert " " not in flat["provenance.config"]  # compact
    assert json.loads(flat["tags"]) == ["a", "b"]
    assert not any(isinstance(v, (dict, list)) for v in flat.values())


def test_collect_runs_one_sorted_row_per_cell(tmp_path):
    paths = [
        write(tmp_path, "c", metrics(model="big", N=90000, D=65536)),
        write(tmp_path, "a", metrics(model="small", data="D131072", N=30000, D=131072, seed=1)),
        write(tmp_path, "b", metrics(model="small", data="D131072", N=30000, D=131072, seed=0, status="diverged")),
        write(tmp_path, "d", metrics(model="small", N=30000, D=65536)),
    ]
    runs = collect_runs(paths)
    assert len(runs) == 4
    assert list(zip(runs.N, runs.D, runs.seed)) == [(30000, 65536, 0), (30000, 131072, 0), (30000, 131072, 1),
                                                    (90000, 65536, 0)]
    assert {"model_config.d_model", "provenance.packages.numpy", "provenance.config"} <= set(runs.columns)
    assert runs.loc[1, "status"] == "diverged" and pd.isna(runs.loc[1, "val_loss"])


def test_missing_key_names_the_file(tmp_path):
    record = metrics()
    del record["N_nonembedding"]
    bad = write(tmp_path, "bad", record)
    with pytest.raises(ValueError, match=r"bad.metrics\.json.*N_nonembedding"):
        collect_runs([write(tmp_path, "good", metrics()), bad])


def test_bad_inputs_are_clear_errors(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        collect_runs([broken])
    with pytest.raises(ValueError, match="already read"):
        collect_runs([write(tmp_path, "x", metrics()), write(tmp_path, "y", metrics())])
    with pytest.raises(ValueError, match="no metrics"):
        collect_runs([])


def test_write_runs_round_trips_through_csv(tmp_path):
    paths = [write(tmp_path, f"s{s}", metrics(seed=s)) for s in range(3)]
    out = tmp_path / "out" / "runs.csv"
    runs = write_runs(paths, out)
    back = pd.read_csv(out)
    assert list(back.columns) == list(runs.columns)
    assert back["seed"].tolist() == [0, 1, 2]
    assert json.loads(back.loc[0, "provenance.config"])["nested"]["betas"] == [0.9, 0.95]
    assert [p.name for p in out.parent.iterdir()] == ["runs.csv"]  # no temporary left behind


def test_cli(tmp_path, capsys):
    paths = [str(write(tmp_path, f"s{s}", metrics(seed=s))) for s in range(2)]
    main(["--out", str(tmp_path / "runs.csv"), *paths])
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 2
    assert "2 cells" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="error: .*missing.json"):
        main(["--out", str(tmp_path / "runs2.csv"), str(tmp_path / "missing.json")])


def write_curve(metrics_path, n_points=3, start_loss=4.0):
    curve = pd.DataFrame({"step": range(n_points), "tokens": [1024 * i for i in range(n_points)],
                          "flops": [1e6 * i for i in range(n_points)],
                          "train_loss": [float("nan")] + [start_loss - i for i in range(1, n_points)],
                          "eval_loss": [start_loss - 0.5 * i for i in range(n_points)],
                          "lr": [1e-3] * n_points})
    curve.to_csv(metrics_path.parent / "curve.csv", index=False)


def test_curves_table_contract(tmp_path):
    paths = [write(tmp_path, "big", metrics(model="big", N=90000)),
             write(tmp_path, "small1", metrics(model="small", seed=1)),
             write(tmp_path, "small0", metrics(model="small", seed=0, status="diverged"))]
    for i, path in enumerate(paths):
        write_curve(path, n_points=3 + i)
    curves = collect_curves(paths)
    assert list(curves.columns) == CELL_COLUMNS + CURVE_COLUMNS == [
        "experiment", "model", "data", "seed", "N", "N_nonembedding", "D", "status",
        "step", "tokens", "flops", "eval_loss", "train_loss", "lr"]
    assert len(curves) == 3 + 4 + 5  # one row per (cell, evaluation)
    # Sorted like runs.csv (N, D, seed), then by step; each row carries its cell's identity.
    assert list(zip(curves.model, curves.seed))[:5] == [("small", 0)] * 5
    assert curves.step.tolist()[:5] == [0, 1, 2, 3, 4] and curves.status.iloc[0] == "diverged"
    assert curves.loc[curves.model == "big", "N"].unique().tolist() == [90000]
    assert curves.train_loss.isna().sum() == 3  # no training loss before the first step
    assert curves.step.dtype == "int64" and curves.tokens.dtype == "int64"


def test_write_runs_writes_curves_parquet_and_summary_atomically(tmp_path):
    paths = [write(tmp_path, f"s{s}", metrics(seed=s, val_loss=2.0 + 0.1 * s)) for s in range(3)]
    paths.append(write(tmp_path, "other", metrics(model="big", N=90000, status="diverged")))
    for path in paths:
        write_curve(path)
    out = tmp_path / "out"
    write_runs(paths, out / "runs.csv", curves=out / "curves.parquet", summary=out / "cells_summary.csv")
    assert sorted(p.name for p in out.iterdir()) == ["cells_summary.csv", "curves.parquet", "runs.csv"]
    back = pd.read_parquet(out / "curves.parquet")
    assert len(back) == 12 and list(back.columns) == CELL_COLUMNS + CURVE_COLUMNS
    summary = pd.read_csv(out / "cells_summary.csv")
    small = summary[summary.model == "L2-d32-h2"].iloc[0]
    assert small.n_seeds == 3 and small.n_ok == 3
    assert small.val_loss_mean == pytest.approx(2.1) and small.val_loss_std == pytest.approx(0.1)
    big = summary[summary.model == "big"].iloc[0]  # a diverged cell: counted, no statistics
    assert big.n_seeds == 1 and big.n_ok == 0 and pd.isna(big.val_loss_mean)


def test_summary_one_seed_has_no_spread():
    runs = pd.DataFrame([flatten(metrics())])
    summary = summarize_cells(runs)
    assert summary.n_seeds.tolist() == [1] and pd.isna(summary.val_loss_std.iloc[0])


def test_missing_curve_is_a_clear_error(tmp_path, capsys):
    path = write(tmp_path, "c", metrics())
    with pytest.raises(SystemExit, match="no learning curve beside"):
        main(["--out", str(tmp_path / "runs.csv"), "--curves", str(tmp_path / "curves.parquet"), str(path)])
    assert not (tmp_path / "runs.csv").exists()  # nothing half-written


def test_samples_cells_say_d_counts_samples(tmp_path):
    # A classifier cell of a samples dataset (contracts §3): FLOPs per sample, a curve in samples with accuracy.
    sample = write(tmp_path, "mlp", metrics(model="mlp-L2-w16", flops_per_sample=3e4, val_accuracy=0.8))
    token = write(tmp_path, "gpt", metrics(flops_per_token=1.8e5))
    pd.DataFrame({"step": [0, 1, 2], "samples": [0, 64, 128], "flops": [0.0, 2e6, 4e6], "train_loss": [2.3, 2.0, 1.5],
                  "eval_loss": [2.3, 1.9, 1.6], "lr": [1e-3] * 3, "eval_accuracy": [0.1, 0.5, 0.8]}
                 ).to_csv(sample.parent / "curve.csv", index=False)
    write_curve(token)
    runs = collect_runs([sample, token]).set_index("model")
    assert runs.loc["mlp-L2-w16", "D_unit"] == "samples" and runs.loc["L2-d32-h2", "D_unit"] == "tokens"
    curves = collect_curves([sample])
    assert {"samples", "eval_accuracy"} <= set(curves.columns) and "tokens" not in curves.columns
    assert curves["samples"].dtype == "int64" and curves["eval_accuracy"].iloc[-1] == 0.8
