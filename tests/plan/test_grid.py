"""The grid beyond the default study: model families on samples, sizes from one knob, transfer sets."""

import copy

import pytest

from workflow_scripts.plan.config import ConfigError, validate_config
from workflow_scripts.plan.flags import train_arguments
from workflow_scripts.plan.grid import expand_grid, size_sweep
from workflow_scripts.plan.resources import train_resources

SINE_CONFIG = {
    "datasets": {"sine": {"source": "generator", "generator": "sine", "samples": {"train": 4096, "val": 512, "test": 512}}},
    "experiments": {
        "sine": {
            "dataset": "sine",
            "model": {"family": "mlp", "activation": "tanh"},
            "models": [{"n_layer": 3, "width": 8}],
            "size_sweep": {"base": {"n_layer": 3, "width": 2}, "scale": "width", "factor": 2, "count": 4},
            "data_sizes": [64, 2048],
            "training": {"batch_size": 0, "epochs": 500, "lr": 0.01, "schedule": "constant", "weight_decay": 0.0},
        }
    },
}


@pytest.fixture
def sine_config():
    return copy.deepcopy(SINE_CONFIG)


def test_mlp_cells_are_named_by_family_and_sweep_sizes_join_listed_ones(sine_config):
    config = validate_config(sine_config)
    cells = expand_grid(config)
    # The listed width 8 first, then the sweep's 2, 4, 16 (its 8 is already listed).
    assert sorted({c.model for c in cells}) == sorted(["mlp-L3-w8", "mlp-L3-w2", "mlp-L3-w4", "mlp-L3-w16"])
    assert {c.data for c in cells} == {"D64", "D2048"}
    cell = next(c for c in cells if c.model == "mlp-L3-w16" and c.data == "D2048")
    args = train_arguments(config, cell)
    assert args["family"] == "mlp" and args["width"] == 16 and args["samples"] == 2048
    assert args["batch_size"] == 0 and args["schedule"] == "constant" and "eval_tokens" not in args
    assert "d_model" not in args and "context" not in args
    resources = train_resources(config, cell)
    assert resources["mem_mb"] >= 1000 and resources["runtime"] >= 10


def test_a_transformer_sweep_rounds_widths_to_head_multiples():
    sizes = size_sweep({"base": {"n_layer": 2, "d_model": 16, "n_head": 4}, "scale": "d_model",
                        "factor": 2**0.5, "count": 5, "multiple_of": 4, "aspect_ratio": 0, "head_dim": 0})
    assert [s["d_model"] for s in sizes] == [16, 24, 32, 44, 64]
    assert all(s["d_model"] % s["n_head"] == 0 for s in sizes)


def test_a_depth_sweep_keeps_the_aspect_ratio():
    sizes = size_sweep({"base": {"n_layer": 1, "d_model": 32, "n_head": 2}, "scale": "n_layer",
                        "factor": 2, "count": 3, "multiple_of": 1, "aspect_ratio": 32, "head_dim": 16})
    assert [(s["n_layer"], s["d_model"], s["n_head"]) for s in sizes] == [(1, 32, 2), (2, 64, 4), (4, 128, 8)]


def test_validating_twice_adds_no_sizes_twice(sine_config):
    once = validate_config(sine_config)
    twice = validate_config(once)
    assert once["experiments"]["sine"]["models"] == twice["experiments"]["sine"]["models"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["experiments"]["sine"]["model"].update(family="transformer"),
         'experiments.sine.model.family = "transformer": expected mlp or cnn for the samples'),
        (lambda c: c["experiments"]["sine"]["models"].append({"n_layer": 2}),
         "experiments.sine.models.1.width = null: expected an integer >= 1 for family mlp"),
        (lambda c: c["experiments"]["sine"].update(data_sizes=[5000]),
         "experiments.sine.data_sizes = 5000: exceeds the 4096 training samples of datasets.sine by 904"),
        (lambda c: c["experiments"]["sine"].update(compute_budgets=[1e9], data_sizes=[]),
         "experiments.sine.compute_budgets = [1000000000.0]: expected [] for family mlp"),
    ],
)
def test_family_mistakes_are_one_line(sine_config, edit, message):
    edit(sine_config)
    with pytest.raises(ConfigError) as error:
        validate_config(sine_config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_transformer_on_text_needs_a_batch_and_a_known_transfer_set(tiny_config):
    tiny_config["experiments"]["tiny"]["transfer"] = "wikitext"
    with pytest.raises(ConfigError, match=r'transfer = "wikitext": expected one of \[\'synthetic\'\]'):
        validate_config(tiny_config)
    tiny_config["experiments"]["tiny"]["transfer"] = ""
    tiny_config["experiments"]["tiny"]["training"]["batch_size"] = 0
    with pytest.raises(ConfigError, match="batch_size = 0: expected >= 1 for family transformer"):
        validate_config(tiny_config)
    tiny_config["experiments"]["tiny"]["training"]["batch_size"] = 8
    tiny_config["experiments"]["tiny"]["model"]["family"] = "mlp"
    with pytest.raises(ConfigError, match='family = "mlp": expected transformer for the text dataset'):
        validate_config(tiny_config)


def test_an_isoflop_grid_keeps_pairs_inside_the_tokens_per_parameter_window(tiny_config):
    from workflow_scripts.plan.grid import grid_warnings
    from workflow_scripts.plan.sizes import nonembedding_parameters

    exp = tiny_config["experiments"]["tiny"]
    exp.update(data_sizes=[], compute_budgets=[1e8, 4e8], tokens_per_parameter=[1, 20])
    config = validate_config(tiny_config)
    cells = expand_grid(config)
    n = {c.model: nonembedding_parameters(1, c.width, 4 * c.width) for c in cells}
    assert cells and all(1 <= c.compute_budget / (6 * n[c.model]) / n[c.model] <= 20 for c in cells)
    assert len(cells) < 6  # some of the 3 sizes × 2 budgets are outside the window
    assert any("tokens per parameter" in line and "outside [1, 20]" in line for line in grid_warnings(config))


def test_cells_with_several_gpus_start_data_parallel(tiny_config, tmp_path, run_snakemake):
    from tests.helpers import write_config

    tiny_config["experiments"]["tiny"]["resources"] = {"gpu": 2}
    tiny_config["experiments"]["tiny"]["training"]["threads"] = 3
    config = write_config(tmp_path / "ddp.yaml", tiny_config)
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "8", "--resources", "gpu=2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-2000:]
    commands = [line for line in result.stdout.splitlines() if "workflow_scripts" in line and "--tokens" in line]
    assert commands and all("python -m workflow_scripts.train.ddp --nproc-per-node 2 --experiment" in c for c in commands)
    assert all("--threads 3 " in c and "--gpus 2" in c for c in commands)  # 6 threads for the job, 3 per process


def test_a_transfer_set_is_tokenized_and_passed_to_every_cell(tiny_config, tmp_path, run_snakemake):
    from tests.helpers import write_config

    tiny_config["datasets"]["other"] = {**tiny_config["datasets"]["synthetic"], "hmm": {"seed": 2, "emission_noise": 0.1}}
    tiny_config["experiments"]["tiny"]["transfer"] = "other"
    config = write_config(tmp_path / "transfer.yaml", tiny_config)
    result = run_snakemake(tmp_path, "-n", "-p", "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule tokenize_transfer:" in result.stdout
    commands = [line for line in result.stdout.splitlines() if "workflow_scripts.train.token_cell " in line]
    wanted = "--transfer-tokens results/data/synthetic/char/transfer/other.bin --transfer-name other"
    assert commands and all(wanted in c and "--test-tokens results/data/synthetic/char/test.bin" in c for c in commands)


def test_a_tokenizer_may_not_take_a_data_folder_name(tiny_config):
    tiny_config["tokenizers"]["raw"] = {"kind": "char"}
    with pytest.raises(ConfigError, match=r"tokenizers.raw: expected a name other than \['raw', 'samples'"):
        validate_config(tiny_config)
