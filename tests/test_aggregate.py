"""Aggregation: metrics.json files into one tidy runs.csv."""

import json

import pandas as pd
import pytest

from workflow_scripts.aggregate import collect_runs, flatten, main, write_runs


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
