"""The training entry point on real token files from the synthetic language."""

import io as stdio
import json
import math
import platform
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from tests.helpers import small_cell
from workflow_scripts.train import device as devices
from workflow_scripts.train import evaluation
from workflow_scripts.io import read_json
from workflow_scripts.models.transformer import GPT, GPTConfig
from workflow_scripts.data.sources import prepare_dataset
from workflow_scripts.data.tokens import tokenize_split
from workflow_scripts.train import token_cell as training
from workflow_scripts.train.schedule import plan_steps, window_order
from workflow_scripts.train.token_cell import train


def test_same_cell_twice_gives_identical_numbers(token_files):
    first, curve1 = train(small_cell(token_files))
    second, curve2 = train(small_cell(token_files))
    assert first["val_loss"] == second["val_loss"]
    assert pd.DataFrame(curve1).equals(pd.DataFrame(curve2))  # NaN-aware, exact
    other, _ = train(small_cell(token_files, seed=1))
    assert other["val_loss"] != first["val_loss"]


def test_metrics_contract_and_accounting(token_files):
    metrics, curve = train(small_cell(token_files))
    steps = 8192 // 32 // 8
    assert metrics["steps"] == steps and metrics["D"] == steps * 8 * 32
    assert metrics["status"] == "ok" and metrics["C"] > metrics["C_6ND"] > 0
    whole_past = read_json(token_files / "val.json")["optimal_loss_per_token"]
    assert metrics["optimal_loss_full_context"] == pytest.approx(whole_past)
    # The floor of a model that sees only its windows lies above the whole-past one.
    assert math.log(17) > metrics["val_loss"] > metrics["optimal_loss"] > whole_past
    assert metrics["val_loss_best"] <= metrics["val_loss"]
    assert [row["step"] for row in curve] == [0, 1, 3, 10, 32]  # 4 log-spaced points and step 0
    assert metrics["provenance"]["config"]["tokens"] == 8192 and metrics["provenance"]["packages"]["torch"]


def test_budget_larger_than_corpus_fails_before_training_and_says_by_how_much(token_files):
    with pytest.raises(ValueError, match="token budget 40000 exceeds the training split .30000 tokens. by 10001"):
        train(small_cell(token_files, tokens=40000))
    with pytest.raises(ValueError, match="smaller than one batch"):
        plan_steps(small_cell(token_files, tokens=100), 30000)


def test_windows_of_a_smaller_budget_are_a_prefix_of_the_stream():
    order = window_order(100, epochs=2, seed=0)
    assert sorted(order[:100]) == list(range(100)) and sorted(order[100:]) == list(range(100))


def test_evaluation_in_smaller_batches_gives_the_same_loss(monkeypatch):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, context=16, n_layer=1, d_model=16, n_head=2, d_ff=64))
    x, y = torch.randint(0, 50, (2, 10, 16)).unbind(0)
    whole = evaluation.evaluate(model, x, y)
    monkeypatch.setattr(evaluation, "EVAL_LOGITS", 3 * 16 * 50)  # a large vocabulary's cap: 3 windows a batch
    batches = []
    model.register_forward_hook(lambda module, args, out: batches.append(len(args[0])))
    assert evaluation.evaluate(model, x, y) == pytest.approx(whole, rel=1e-6)
    assert batches == [3, 3, 3, 1]


def test_divergence_is_recorded_not_fatal(token_files):
    metrics, _ = train(small_cell(token_files, lr=1e6, grad_clip=0.0, tokens=16384))
    assert metrics["status"] == "diverged"
    assert metrics["val_loss"] is None


def test_command_line_writes_outputs_and_reports_bad_budget_in_one_line(token_files, tmp_path):
    flags = ["--train-tokens", str(token_files / "train.bin"), "--val-tokens", str(token_files / "val.bin"),
             "--n-layer", "1", "--d-model", "8", "--n-head", "2", "--context", "16", "--batch-size", "4",
             "--eval-tokens", "256", "--metrics", str(tmp_path / "m.json"), "--curve", str(tmp_path / "c.csv")]
    ok = subprocess.run([sys.executable, "-m", "workflow_scripts.train.token_cell", *flags, "--tokens", "2048"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "m.json").read_text())["status"] == "ok"
    assert not pd.read_csv(tmp_path / "c.csv").empty
    bad = subprocess.run([sys.executable, "-m", "workflow_scripts.train.token_cell", *flags, "--tokens", "99999",
                          "--metrics", str(tmp_path / "bad.json")], capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().startswith("error: token budget 99999 exceeds")
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.json").exists()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keeping freed memory is a glibc setting")
def test_cpu_cells_keep_freed_memory_on_glibc():
    assert devices.keep_freed_memory()


def test_device_choice_and_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert devices.choose_device("auto") == torch.device("cpu")
    assert devices.choose_precision("auto", torch.device("cpu")) == "fp32"
    assert devices.choose_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match=r"^device 'cuda' is not available on this machine: expected one of \['cpu', 'auto'\]$"):
        devices.choose_device("cuda")
    with pytest.raises(ValueError, match=r"^device 'tpu': expected one of \['auto', 'cpu', 'cuda', 'mps'\]$"):
        devices.choose_device("tpu")
    with pytest.raises(ValueError, match=r"^device 'cuda:1' is not available on this machine"):
        devices.choose_device("cuda:1")  # a data-parallel rank's own GPU
    with pytest.raises(ValueError, match=r"^device 'cpu:1': expected one of"):
        devices.choose_device("cpu:1")
    with pytest.raises(ValueError, match=r"^precision 'fp16': expected one of \['auto', 'fp32', 'bf16'\]$"):
        devices.choose_precision("fp16", torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.choose_device("auto") == torch.device("cuda")  # CUDA first, even with MPS present
    assert devices.choose_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert devices.choose_device("auto") == torch.device("cuda")


def test_bf16_autocast_on_cpu_trains_and_is_recorded(token_files):
    metrics, _ = train(small_cell(token_files, device="cpu", precision="bf16"))
    assert metrics["status"] == "ok" and math.log(17) > metrics["val_loss"]
    assert metrics["provenance"]["device"] == "cpu" and metrics["provenance"]["precision"] == "bf16"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_cell_trains_in_bf16_with_tf32_and_fused_adamw(token_files):
    metrics, _ = train(small_cell(token_files, device="auto"))
    assert metrics["status"] == "ok" and math.log(17) > metrics["val_loss"]
    assert metrics["provenance"]["device"] == "cuda" and metrics["provenance"]["precision"] == "bf16"
    assert torch.backends.cuda.matmul.allow_tf32 and devices.fused_adamw(torch.device("cuda"))


def test_wsd_cell_and_its_budget_are_recorded(token_files):
    metrics, curve = train(small_cell(token_files, schedule="wsd", warmup_steps=2, cooldown_frac=0.5,
                                      compute_budget=1e6))
    assert metrics["C_budget"] == 1e6 and metrics["steps"] == metrics["steps_trained"] == 32
    assert metrics["steps_inherited"] == 0
    lr = {row["step"]: row["lr"] for row in curve}  # the rate of the step after each evaluation
    assert lr[3] == lr[10] == 3e-3 and lr[32] == pytest.approx(3e-4 + 2.7e-3 * (1 - (15 / 16) ** 0.5))
    assert train(small_cell(token_files))[0]["C_budget"] is None  # a data-size cell has no budget


@pytest.fixture(scope="module")
def test_split(token_files):
    """The test split of ``token_files`` (conftest tokenizes train and val only)."""
    source = read_json(token_files / "raw" / "source.json")
    tokenize_split(token_files / "tokenizer.json", token_files / "raw" / "test.txt", token_files / "test.bin",
                   token_files / "test.json", source_meta=source, split="test")
    return token_files / "test.bin"


@pytest.fixture(scope="module")
def other_language(token_files, tmp_path_factory):
    """Another synthetic language's test split in ``token_files``' tokenizer: a transfer set."""
    root = tmp_path_factory.mktemp("other")
    spec = {"source": "generator", "generator": "hmm_language",
            "hmm": {"n_states": 8, "vocab_size": 16, "zipf_exponent": 1.0, "transition_concentration": 0.5, "seed": 11},
            "symbols": {"train": 1000, "val": 1000, "test": 3000}}
    prepare_dataset(spec, root / "raw")
    tokenize_split(token_files / "tokenizer.json", root / "raw" / "test.txt", root / "test.bin", root / "test.json",
                   source_meta=read_json(root / "raw" / "source.json"), split="test")
    return root


def test_test_and_transfer_losses_are_recorded_and_transfer_follows_the_curve(token_files, test_split, other_language):
    plain, plain_curve = train(small_cell(token_files))
    assert plain["test_loss"] is None and plain["transfer_loss"] is None and plain["transfer_dataset"] is None
    assert all(row["transfer_loss"] is None for row in plain_curve)
    assert training.curve_csv(plain_curve).splitlines()[1].endswith(",")  # the column is there, empty

    cell = small_cell(token_files, test_tokens=str(test_split),
                      transfer_tokens=str(other_language / "test.bin"), transfer_name="other")
    metrics, curve = train(cell)
    # Evaluation sets are only measured, never trained on: the run itself is unchanged.
    assert metrics["val_loss"] == plain["val_loss"] and [r["eval_loss"] for r in curve] == [r["eval_loss"] for r in plain_curve]
    assert metrics["transfer_dataset"] == "other" and metrics["transfer_loss"] == curve[-1]["transfer_loss"]
    # The test split is the language of validation; the transfer set another language: further off.
    assert abs(metrics["test_loss"] - metrics["val_loss"]) < 0.2 < metrics["transfer_loss"] - metrics["val_loss"]
    assert all(math.isfinite(row["transfer_loss"]) for row in curve)  # at every evaluation point
    assert metrics["provenance"]["transfer_tokens_sha256"] == read_json(other_language / "test.json")["sha256"]
    table = pd.read_csv(stdio.StringIO(training.curve_csv(curve)))
    assert list(table.columns) == training.CURVE_COLUMNS and table["transfer_loss"].notna().all()


def test_evaluation_set_of_another_vocabulary_or_too_short_fails_before_training(token_files, test_split, other_language,
                                                                                 tmp_path):
    vocab = read_json(token_files / "train.json")["vocab_size"]
    wide = tmp_path / "wide.bin"
    np.arange(100, dtype=np.uint16).tofile(wide)
    (tmp_path / "wide.json").write_text(json.dumps({**read_json(other_language / "test.json"), "vocab_size": 300}))
    with pytest.raises(ValueError, match=rf"^transfer tokens .*wide.bin have vocabulary 300, expected the training split's {vocab}:"):
        train(small_cell(token_files, transfer_tokens=str(wide)))
    with pytest.raises(ValueError, match=r"^test split .*test.bin has \d+ tokens, fewer than one window of 2048$"):
        train(small_cell(token_files, test_tokens=str(test_split), context=2048, tokens=8192, batch_size=1,
                         eval_tokens=2048))


def test_tied_embeddings_flag_parses_true_and_false(token_files):
    assert training.parse_args([]).tied_embeddings is True
    assert training.parse_args(["--tied-embeddings", "False"]).tied_embeddings is False  # as Snakemake writes it
    assert training.parse_args(["--tied-embeddings", "true"]).tied_embeddings is True
    with pytest.raises(SystemExit):
        training.parse_args(["--tied-embeddings", "maybe"])
    metrics, _ = train(small_cell(token_files, tied_embeddings=False))
    assert metrics["status"] == "ok" and metrics["model_config"]["tied_embeddings"] is False
    vocab = read_json(token_files / "train.json")["vocab_size"]
    assert metrics["N"] == metrics["N_nonembedding"] + 2 * vocab * 16 + 32 * 16 and metrics["N_head"] == vocab * 16


@pytest.mark.slow
def test_compiled_cell_matches_the_eager_cell(token_files):
    # A cold compile takes ~25 s on 2 cores, a warm one (torch's per-user TORCHINDUCTOR_CACHE_DIR) ~5 s.
    eager, _ = train(small_cell(token_files))
    compiled, _ = train(small_cell(token_files, compile=True))
    assert compiled["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-5)
    assert compiled["provenance"]["config"]["compile"] is True
