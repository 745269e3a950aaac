"""Shared fixtures (tiny configs, token files, an offline hub); plain helpers are in tests/helpers.py."""

import copy

import pytest

from workflow_scripts.io import read_json
from workflow_scripts.data.sources import prepare_dataset
from workflow_scripts.data.tokenizer import train_tokenizer
from workflow_scripts.data.tokens import tokenize_split
from tests.helpers import TINY_CONFIG, snakemake


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """Never touch the network or the user's cache: offline mode, a private cache folder (here and in jobs)."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # for snakemake's jobs
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mplconfig"))


@pytest.fixture
def tiny_config():
    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture
def run_snakemake():
    return snakemake


# Token files of a small synthetic language, shared by the training, resume and branching tests.
@pytest.fixture(scope="module")
def token_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    spec = {"source": "generator", "generator": "hmm_language",
            "hmm": {"n_states": 8, "vocab_size": 16, "zipf_exponent": 2.0, "transition_concentration": 0.05, "seed": 3},
            "symbols": {"train": 30000, "val": 3000, "test": 1000}}
    prepare_dataset(spec, root / "raw")
    train_tokenizer({"kind": "char"}, root / "raw" / "train.txt", root / "tokenizer.json")
    source = read_json(root / "raw" / "source.json")
    for split in ("train", "val"):
        tokenize_split(root / "tokenizer.json", root / "raw" / f"{split}.txt", root / f"{split}.bin",
                       root / f"{split}.json", source_meta=source, split=split)
    return root
