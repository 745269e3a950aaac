import dataclasses

import pytest
import yaml

from tests.helpers import REPO, write_config
from workflow_scripts.data.synthetic import HMMSpec
from workflow_scripts.plan.config import ConfigError, load_config, validate_config
from workflow_scripts.plan.flags import train_arguments
from workflow_scripts.plan.grid import expand_grid


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
    arguments = {c.width: train_arguments(config, c) for c in expand_grid(config)}
    assert {d: args["lr"] for d, args in arguments.items()} == pytest.approx(expected, rel=1e-12)
    assert not {"lr_rule", "lr_base_width"} & arguments[8].keys()  # resolved here; the job gets only --lr


def test_learning_rate_rule_defaults_to_constant_at_base_width_32(tiny_config):
    training = validate_config(tiny_config)["experiments"]["tiny"]["training"]
    assert training["lr_rule"] == "constant" and training["lr_base_width"] == 32


def test_unknown_learning_rate_rule_is_one_line(tiny_config):
    tiny_config["experiments"]["tiny"]["training"]["lr_rule"] = "sqrt"
    with pytest.raises(ConfigError, match=r"training.lr_rule = \"sqrt\": expected one of \['constant', 'inverse_sqrt_fan_in', 'mup'\]"):
        validate_config(tiny_config)


def budget_config(tiny_config, budgets):
    tiny_config["experiments"]["tiny"].update(data_sizes=[], compute_budgets=budgets)
    return tiny_config


def test_nonembedding_parameters_match_the_models_count():
    from workflow_scripts.plan.sizes import nonembedding_parameters
    from workflow_scripts.models.transformer import GPTConfig, count_parameters

    for n_layer, d, d_ff in [(1, 8, 32), (2, 24, 96), (3, 64, 100)]:
        cfg = GPTConfig(vocab_size=50, context=16, n_layer=n_layer, d_model=d, n_head=2, d_ff=d_ff)
        assert nonembedding_parameters(n_layer, d, d_ff) == count_parameters(cfg)["N_nonembedding"]


def test_compute_budgets_expand_to_one_cell_per_budget_and_size_with_d_from_6nd(tiny_config):
    from workflow_scripts.plan.grid import grid_warnings
    from workflow_scripts.plan.sizes import nonembedding_parameters

    config = validate_config(budget_config(tiny_config, [1e7, 1e8, 1e9]))
    cells = expand_grid(config)
    batch = 8 * 32
    # Sizes d 8, 16, 24 (N 792, 3120, 6984): at 1e9 the two smaller would need more than the
    # 40,000 training symbols and are left out, each with one warning line.
    assert [(c.model, c.data) for c in cells] == [
        ("L1-d8-h2", "C1e7"), ("L1-d8-h2", "C1e8"), ("L1-d16-h2", "C1e7"), ("L1-d16-h2", "C1e8"),
        ("L1-d24-h2", "C1e7"), ("L1-d24-h2", "C1e8"), ("L1-d24-h2", "C1e9")]
    for cell in cells:
        n = nonembedding_parameters(1, cell.width, 4 * cell.width)
        assert cell.data_size % batch == 0 and abs(cell.data_size - cell.compute_budget / (6 * n)) <= batch / 2
        assert train_arguments(config, cell)["compute_budget"] == cell.compute_budget
    assert cells[0].data_size == 2048 and cells[0].compute_budget == 1e7  # 1e7 / (6 · 792) = 2104 → 8 batches
    warnings = grid_warnings(config)
    assert warnings == [
        "warning: experiments.tiny: L1-d8-h2 at C1e9 left out of the grid: D = C / (6N) = 210438 tokens (N = 792) "
        "exceeds the 40000 training tokens",
        "warning: experiments.tiny: L1-d16-h2 at C1e9 left out of the grid: D = C / (6N) = 53419 tokens (N = 3120) "
        "exceeds the 40000 training tokens",
    ]
    # Under half a batch rounds to none: left out as less than one batch.
    small = validate_config(budget_config(tiny_config, [1e6, 1e7]))
    assert [c.data for c in expand_grid(small) if c.model == "L1-d24-h2"] == ["C1e7"]
    assert "L1-d24-h2 at C1e6 left out of the grid: D = C / (6N) = 24 tokens (N = 6984) is less than one batch " \
           "of 256 tokens" in "\n".join(grid_warnings(small))


def test_budget_names_are_wildcard_safe():
    from workflow_scripts.plan.grid import budget_name

    assert [budget_name(c) for c in (1e15, 3.16e15, 10**9, 6e18, 123456789)] == [
        "C1e15", "C3.16e15", "C1e9", "C6e18", "C1.23457e8"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda e: e.update(compute_budgets=[1e8]),
         "experiments.tiny.compute_budgets = [100000000.0]: expected either data_sizes or compute_budgets, not both "
         "(data_sizes = [4096, 16384])"),
        (lambda e: e.update(data_sizes=[], compute_budgets=[]),
         "experiments.tiny.data_sizes = []: expected at least one entry (the grid is empty), or compute_budgets"),
        (lambda e: e.update(data_sizes=[], compute_budgets=[1e8, 100000000.4]),
         "experiments.tiny.compute_budgets = [100000000.0, 100000000.4]: expected distinct budgets "
         "(equal to six significant digits: C1e8)"),
        (lambda e: e.update(data_sizes=[], compute_budgets=[1e3, 1e12]),
         "experiments.tiny.compute_budgets = [1000.0, 1000000000000.0]: expected at least one (budget, model) whose "
         "D = C / (6N) lies between one batch (256 tokens) and the training split"),
        (lambda e: e.update(data_sizes=[], compute_budgets=[-1]),
         "experiments.tiny.compute_budgets.0 = -1: expected > 0"),
        (lambda e: e["training"].update(schedule="wsd"),
         "experiments.tiny.training.warmup_steps = 0: expected > 0 with schedule wsd and branch true"),
        (lambda e: e["training"].update(schedule="wsd", warmup_steps=2, epochs=2),
         "experiments.tiny.training.epochs = 2: expected 1 with schedule wsd and branch true"),
        (lambda e: e["training"].update(schedule="step"),
         "experiments.tiny.training.schedule = \"step\": expected one of ['cosine', 'wsd', 'constant']"),
        (lambda e: e["training"].update(cooldown_frac=1.5),
         "experiments.tiny.training.cooldown_frac = 1.5: expected <= 1"),
    ],
)
def test_bad_grid_axis_or_schedule_is_one_line(tiny_config, edit, message):
    edit(tiny_config["experiments"]["tiny"])
    with pytest.raises(ConfigError) as error:
        validate_config(tiny_config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_wsd_without_branching_or_with_one_budget_needs_no_fixed_warmup(tiny_config):
    tiny_config["experiments"]["tiny"]["training"].update(schedule="wsd", branch=False, epochs=2)
    validate_config(tiny_config)
    tiny_config["experiments"]["tiny"].update(data_sizes=[4096])
    tiny_config["experiments"]["tiny"]["training"].update(branch=True)
    validate_config(tiny_config)


def test_wsd_cells_of_a_model_and_seed_form_one_branch_group(tiny_config):
    from workflow_scripts.plan.grid import branch_groups

    tiny_config["experiments"]["tiny"].update(seeds=[0, 1], data_sizes=[16384, 4096, 8192])
    tiny_config["experiments"]["tiny"]["training"].update(schedule="wsd", warmup_steps=3, cooldown_frac=0.25)
    config = validate_config(tiny_config)
    cells = expand_grid(config)
    groups = branch_groups(config, cells)
    assert len(groups) == 3 * 2
    assert [c.data_size for c in groups[("tiny", "L1-d16-h2", "seed1")]] == [4096, 8192, 16384]  # smallest first
    args = train_arguments(config, cells[0])
    assert (args["schedule"], args["warmup_steps"], args["cooldown_frac"]) == ("wsd", 3, 0.25)
    assert args["compute_budget"] == 0.0  # a data-size grid's cell has no budget (metrics: C_budget null)
    assert "branch" not in args  # a workflow setting, not a training flag
    tiny_config["experiments"]["tiny"]["training"]["branch"] = False
    assert branch_groups(validate_config(tiny_config), cells) == {}
