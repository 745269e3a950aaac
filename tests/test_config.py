import dataclasses

import pytest
import yaml

from conftest import REPO, write_config
from workflow_scripts.synthetic import HMMSpec
from workflow_scripts.config import ConfigError, expand_grid, load_config, train_arguments, validate_config


def test_default_study_is_valid_and_fills_defaults():
    config = load_config(REPO / "config" / "config.yaml")
    exp = config["experiments"]["synthetic"]
    assert exp["training"]["beta2"] == 0.95  # filled from the schema's default
    cells = expand_grid(config)
    assert len(cells) == len(exp["models"]) * len(exp["data_sizes"]) * len(exp["seeds"])
    assert len({c.key for c in cells}) == len(cells)


def test_schema_defaults_match_the_generator_defaults():
    # The generator can run outside Snakemake; both entry points must describe the same language.
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    hmm = schema["$defs"]["dataset"]["properties"]["hmm"]["properties"]
    for field in dataclasses.fields(HMMSpec):
        assert hmm[field.name]["default"] == field.default, field.name


def test_grid_and_train_arguments(tiny_config):
    config = validate_config(tiny_config)
    cells = expand_grid(config)
    assert [c.model for c in cells[:2]] == ["L1-d8-h2", "L1-d8-h2"]
    assert [c.data for c in cells[:2]] == ["D4096", "D16384"]
    args = train_arguments(config, cells[0])
    assert args["d_ff"] == 32 and args["context"] == 32 and args["tokens"] == 4096 and args["lr"] == 0.003


def test_a_model_size_may_set_its_own_learning_rate(tiny_config):
    tiny_config["experiments"]["tiny"]["models"][1]["lr"] = 0.01
    config = validate_config(tiny_config)
    lrs = {c.model: train_arguments(config, c)["lr"] for c in expand_grid(config)}
    assert lrs == {"L1-d8-h2": 0.003, "L1-d16-h2": 0.01, "L1-d24-h2": 0.003}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["experiments"]["tiny"]["models"][0].update(d_model=-4),
         "experiments.tiny.models.0.d_model = -4: expected >= 1"),
        (lambda c: c["experiments"]["tiny"].update(colour="blue"),
         "experiments.tiny: Additional properties are not allowed ('colour' was unexpected)"),
        (lambda c: c["datasets"]["synthetic"].update(source="ftp"),
         "datasets.synthetic.source = \"ftp\": expected one of ['generator', 'local', 'url', 'hf']"),
        (lambda c: c["experiments"]["tiny"].update(tokenizer="sentencepiece"),
         "experiments.tiny.tokenizer = \"sentencepiece\": expected one of ['char']"),
        (lambda c: c["tokenizers"]["char"].update(kind="wordpiece"),
         "tokenizers.char.kind = \"wordpiece\": expected one of ['char', 'bpe', 'pretrained']"),
        (lambda c: c["experiments"]["tiny"].update(data_sizes=[]),
         "experiments.tiny.data_sizes = []: expected at least one entry (the grid is empty)"),
        (lambda c: c.update(experiments={}),
         "experiments = {}: expected at least one experiment"),
        (lambda c: c["experiments"]["tiny"]["models"][0].update(n_head=3),
         "experiments.tiny.models.0.n_head = 3: expected a divisor of d_model = 8"),
        (lambda c: c["experiments"]["tiny"].update(data_sizes=[100000]),
         "experiments.tiny.data_sizes = 100000: exceeds the 40000 training symbols of datasets.synthetic by 60001"),
    ],
)
def test_bad_values_give_one_line_naming_key_value_and_expectation(tiny_config, edit, message):
    edit(tiny_config)
    with pytest.raises(ConfigError) as error:
        validate_config(tiny_config)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_snakemake_stops_with_one_line_before_any_job(tiny_config, tmp_path, run_snakemake):
    tiny_config["experiments"]["tiny"]["models"][0]["d_model"] = -4
    config = write_config(tmp_path / "bad.yaml", tiny_config)
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "config error: experiments.tiny.models.0.d_model = -4: expected >= 1"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("constant", {8: 0.004, 16: 0.004, 24: 0.01}),
        # lr × sqrt(base_width / d_model) with base width 16: d 8 → ×√2, d 16 → ×1
        ("inverse_sqrt_fan_in", {8: 0.004 * 2**0.5, 16: 0.004, 24: 0.01}),
        # lr × base_width / d_model: d 8 → ×2, d 16 → ×1
        ("mup", {8: 0.008, 16: 0.004, 24: 0.01}),
    ],
)
def test_learning_rate_rule_sets_each_sizes_rate_and_a_sizes_own_rate_wins(tiny_config, rule, expected):
    tiny_config["experiments"]["tiny"]["training"].update(lr=0.004, lr_rule=rule, lr_base_width=16)
    tiny_config["experiments"]["tiny"]["models"][2]["lr"] = 0.01  # d 24 sets its own rate
    config = validate_config(tiny_config)
    arguments = {c.d_model: train_arguments(config, c) for c in expand_grid(config)}
    assert {d: args["lr"] for d, args in arguments.items()} == pytest.approx(expected, rel=1e-12)
    assert not {"lr_rule", "lr_base_width"} & arguments[8].keys()  # resolved here; the job gets only --lr


def test_learning_rate_rule_defaults_to_constant_at_base_width_32(tiny_config):
    training = validate_config(tiny_config)["experiments"]["tiny"]["training"]
    assert training["lr_rule"] == "constant" and training["lr_base_width"] == 32


def test_unknown_learning_rate_rule_is_one_line(tiny_config):
    tiny_config["experiments"]["tiny"]["training"]["lr_rule"] = "sqrt"
    with pytest.raises(ConfigError, match=r"training.lr_rule = \"sqrt\": expected one of \['constant', 'inverse_sqrt_fan_in', 'mup'\]"):
        validate_config(tiny_config)
