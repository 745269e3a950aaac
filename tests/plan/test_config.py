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


# Issue 15: names that stay under results/, finite numbers, bounds, repeated entries, files checked at validation.

@pytest.mark.parametrize("table, name", [("experiments", ".."), ("experiments", "."), ("experiments", "a/b"),
                                          ("datasets", "my data"), ("tokenizers", ".."), ("tokenizers", "-x"),
                                          ("experiments", "x" * 101), ("datasets", "$(rm)")])
def test_a_name_that_could_leave_results_is_one_line_naming_it_and_the_allowed_characters(tiny_config, table,
                                                                                          name):
    original = {"experiments": "tiny", "datasets": "synthetic", "tokenizers": "char"}[table]
    tiny_config[table][name] = tiny_config[table].pop(original)
    if table != "experiments":  # keep the references right, so that only the name is wrong
        tiny_config["experiments"]["tiny"][table.removesuffix("s")] = name
    with pytest.raises(ConfigError) as error:
        validate_config(tiny_config)
    assert str(error.value) == (f"config error: {table}.{name!r}: expected a name of 1-100 of A-Z a-z 0-9 _ . -, "
                                "starting with a letter or digit (it names a folder under results/)")


def test_the_wildcards_take_the_validated_name_pattern():
    import re

    from workflow_scripts.plan.names import NAME_PATTERN, name_problem

    common = (REPO / "rules" / "common.smk").read_text()
    block = common[common.index("wildcard_constraints:"):].split("\n\n")[0]
    for wildcard in ("experiment", "dataset", "tokenizer"):
        assert f"    {wildcard}=NAME_PATTERN," in block
    for name in ("wt103_model", "chinchilla-small", "v1.2", "A"):
        assert name_problem(name) is None and re.fullmatch(NAME_PATTERN, name)
    for name in ("..", ".", ".hidden", "a/b", "", "a b"):
        assert name_problem(name) and not re.fullmatch(NAME_PATTERN, name)


@pytest.mark.parametrize("edit, key", [
    (lambda c: c["experiments"]["tiny"]["training"].update(lr=float("nan")), "experiments.tiny.training.lr = nan"),
    (lambda c: c["experiments"]["tiny"]["training"].update(lr=float("inf")), "experiments.tiny.training.lr = inf"),
    (lambda c: c["experiments"]["tiny"]["models"][0].update(lr=float("nan")), "experiments.tiny.models.0.lr = nan"),
    (lambda c: c["datasets"]["synthetic"]["hmm"].update(zipf_exponent=float("inf")),
     "datasets.synthetic.hmm.zipf_exponent = inf"),
    (lambda c: c["experiments"]["tiny"]["training"].update(weight_decay=float("inf")),
     "experiments.tiny.training.weight_decay = inf"),
])
def test_nan_and_infinities_are_rejected_everywhere_in_one_line(tiny_config, edit, key):
    edit(tiny_config)
    with pytest.raises(ConfigError) as error:
        validate_config(tiny_config)
    assert str(error.value) == f"config error: {key}: expected a finite number"


def test_an_infinite_budget_or_a_negative_infinity_meets_the_schemas_bound_first(tiny_config):
    tiny_config["experiments"]["tiny"].update(data_sizes=[], compute_budgets=[float("inf")])
    with pytest.raises(ConfigError, match=r"^config error: experiments.tiny.compute_budgets.0 = Infinity: "
                                          r"expected <= 1e\+30$"):
        validate_config(tiny_config)
    tiny_config["experiments"]["tiny"].update(data_sizes=[4096], compute_budgets=[])
    tiny_config["experiments"]["tiny"]["training"]["grad_clip"] = float("-inf")
    with pytest.raises(ConfigError, match=r"^config error: experiments.tiny.training.grad_clip = -Infinity: "
                                          r"expected >= 0$"):
        validate_config(tiny_config)


def test_the_same_nan_from_yaml_stops_the_config_file(tiny_config, tmp_path):
    path = write_config(tmp_path / "c.yaml", tiny_config)
    path.write_text(path.read_text().replace("eval_points: 4", "eval_points: 4\n      lr: .nan"))
    with pytest.raises(ConfigError, match=r"experiments.tiny.training.lr = nan: expected a finite number"):
        load_config(path)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["tokenizers"].update(char={"kind": "bpe", "vocab_size": 10**9}),
     "tokenizers.char.vocab_size = 1000000000: expected <= 1048576"),
    (lambda c: c["experiments"]["tiny"]["model"].update(context=10**7),
     "experiments.tiny.model.context = 10000000: expected <= 131072"),
    (lambda c: c["experiments"]["tiny"]["models"][0].update(d_model=10**6, n_head=1),
     "experiments.tiny.models.0.d_model = 1000000: expected <= 32768"),
    (lambda c: c["datasets"]["synthetic"]["symbols"].update(train=10**12),
     "datasets.synthetic.symbols.train = 1000000000000: expected <= 4294967296"),
    # Sizes a sweep generates get the same bounds as sizes written out.
    (lambda c: c["experiments"]["tiny"].update(size_sweep={"base": {"n_layer": 1, "d_model": 8, "n_head": 2},
                                                           "scale": "d_model", "factor": 16, "count": 5}),
     "experiments.tiny.models.6.d_model = 524288: expected <= 32768"),
])
def test_sizes_a_machine_cannot_hold_are_one_line(tiny_config, edit, message):
    edit(tiny_config)
    with pytest.raises(ConfigError) as error:
        validate_config(tiny_config)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("edit, message", [
    (lambda e: e["models"].append({"n_layer": 1, "d_model": 8, "n_head": 2, "lr": 0.01}),
     'experiments.tiny.models.3 = {"n_layer": 1, "d_model": 8, "n_head": 2, "lr": 0.01}: the shape L1-d8-h2 of '
     'models.0 = {"n_layer": 1, "d_model": 8, "n_head": 2, "lr": null} again: expected each shape once'),
    (lambda e: e.update(data_sizes=[4096, 16384, 4096]),
     "experiments.tiny.data_sizes = [4096, 16384, 4096]: expected distinct entries (4096 repeated; each is one cell)"),
    (lambda e: e.update(seeds=[0, 1, 1]), "experiments.tiny.seeds = [0, 1, 1]: expected distinct entries (1 repeated"),
])
def test_repeated_shapes_data_sizes_and_seeds_are_one_line_not_a_silent_merge(tiny_config, edit, message):
    edit(tiny_config["experiments"]["tiny"])
    with pytest.raises(ConfigError) as error:
        validate_config(tiny_config)
    assert message in str(error.value) and "\n" not in str(error.value)


def _local(tiny_config, path):
    tiny_config["datasets"]["synthetic"] = {"source": "local", "path": path}
    tiny_config["experiments"]["tiny"]["data_sizes"] = [256]
    return tiny_config


def _file(path, data: bytes):
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize("make, problem", [
    (lambda d: str(d / "absent.txt"), "no such file (or the glob matched none)"),
    (lambda d: str(d / "*.md"), "no such file (or the glob matched none)"),
    (lambda d: str(d), "is a directory; expected a file or a glob of files"),
    (lambda d: _file(d / "empty.txt", b""), "is empty: expected text or a table"),
    (lambda d: _file(d / "latin1.txt", "caf\xe9\n".encode("latin-1")), "not UTF-8 text (invalid continuation byte at byte 3)"),
    (lambda d: [str(d / "a.txt"), _file(d / "b.txt", b"\xff\xfe")], "b.txt': not UTF-8 text (invalid start byte at byte 0)"),
])
def test_local_files_are_checked_at_validation(tiny_config, tmp_path, make, problem):
    (tmp_path / "a.txt").write_text("some text\n" * 100)
    path = make(tmp_path)
    with pytest.raises(ConfigError) as error:
        validate_config(_local(tiny_config, path))
    message = str(error.value)
    assert message.startswith("config error: datasets.synthetic.path = ") and problem in message
    assert "\n" not in message


def test_good_local_files_and_globs_pass(tiny_config, tmp_path):
    (tmp_path / "a.txt").write_text("some text\n" * 100)
    (tmp_path / "b.txt").write_text("caf\u00e9 " * 10)  # UTF-8 beyond ASCII
    validate_config(_local(tiny_config, str(tmp_path / "*.txt")))


@pytest.mark.parametrize("make, problem", [
    (lambda d: str(d / "absent.json"), "no such file: expected a tokenizer.json file"),
    (lambda d: (d / "t.json").mkdir() or str(d / "t.json"), "is a directory: expected a tokenizer.json file"),
    (lambda d: (d / "t.json").write_text("") or str(d / "t.json"), "the file is empty"),
])
def test_a_pretrained_tokenizer_file_is_checked_at_validation(tiny_config, tmp_path, make, problem):
    tiny_config["tokenizers"]["char"] = {"kind": "pretrained", "path": make(tmp_path)}
    with pytest.raises(ConfigError) as error:
        validate_config(tiny_config)
    assert str(error.value).startswith("config error: tokenizers.char.path = ") and problem in str(error.value)


def test_snakemake_dry_run_stops_on_a_name_that_escapes_results(tiny_config, tmp_path, run_snakemake):
    tiny_config["experiments"][".."] = tiny_config["experiments"].pop("tiny")
    config = write_config(tmp_path / "bad.yaml", tiny_config)
    result = run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("config error: experiments.'..': expected a name of ")
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()


def test_the_decode_check_reads_a_bounded_start_and_a_character_cut_there_is_not_an_error(tmp_path):
    from workflow_scripts.plan.local_files import undecodable

    path = tmp_path / "t.txt"
    path.write_bytes("aé".encode("utf-8") + b"\xff")  # a, then é's two bytes, then a bad byte
    assert undecodable(path, limit=2) is None  # the first byte of é at the cut: maybe fine, not judged
    assert undecodable(path, limit=3) is None
    assert undecodable(path, limit=4) == "not UTF-8 text (invalid start byte at byte 3)"
