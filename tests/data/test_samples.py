"""Samples datasets (contract section 1): sine, MNIST-1D and image tables as .npy splits."""

import json
import socket

import numpy as np
import pytest

from tests.helpers import write_config
from workflow_scripts.data.samples import prepare_samples
from workflow_scripts.data.samples_files import PARTS, SPLITS
from workflow_scripts.plan.inputs import local_input_files

META_KEYS = {"kind", "task", "split", "n", "x_shape", "x_dtype", "y_dtype", "x_scale", "n_classes", "optimal_loss",
             "sha256", "source"}
FILES = [f"{split}.{part}" for split in SPLITS for part in ("x.npy", "y.npy", "json")]


pytestmark = pytest.mark.usefixtures("offline_hub")


def load(folder, split):
    x = np.load(folder / f"{split}.x.npy", mmap_mode="r")
    y = np.load(folder / f"{split}.y.npy", mmap_mode="r")
    return x, y, json.loads((folder / f"{split}.json").read_text())


def file_bytes(folder):
    return {name: (folder / name).read_bytes() for name in FILES if name.endswith(".npy")}


def sine_spec(**sine):
    return {"source": "generator", "generator": "sine", "sine": {"noise": 0.1, "seed": 3, **sine},
            "samples": {"train": 300, "val": 100, "test": 50}}


def test_sine_splits_honour_the_contract_and_repeat(tmp_path):
    meta = prepare_samples(sine_spec(), tmp_path / "a")
    prepare_samples(sine_spec(), tmp_path / "b")
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")  # same seed, same bytes
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(FILES)
    for split, n in (("train", 300), ("val", 100), ("test", 50)):
        x, y, meta = load(tmp_path / "a", split)
        assert META_KEYS <= meta.keys() and meta["kind"] == "samples" and meta["split"] == split
        assert x.shape == (n, 1) and y.shape == (n, 1) and x.dtype == y.dtype == np.float32
        assert meta["task"] == "regression" and meta["n"] == n and meta["x_shape"] == [1]
        assert meta["x_dtype"] == meta["y_dtype"] == "float32" and meta["x_scale"] == 1.0
        assert meta["n_classes"] is None and meta["optimal_loss"] == pytest.approx(0.01)
        assert -2 * np.pi <= x.min() and x.max() <= 2 * np.pi
        assert meta["source"]["generator"] == "sine" and meta["source"]["provenance"]["config"]["sine"]["seed"] == 3
    prepare_samples(sine_spec(seed=4), tmp_path / "c")
    assert file_bytes(tmp_path / "c")["train.x.npy"] != file_bytes(tmp_path / "a")["train.x.npy"]


def test_sine_more_training_samples_leave_val_and_test_and_extend_train(tmp_path):
    prepare_samples(sine_spec(), tmp_path / "a")
    bigger = sine_spec()
    bigger["samples"]["train"] = 500
    prepare_samples(bigger, tmp_path / "b")
    a, b = file_bytes(tmp_path / "a"), file_bytes(tmp_path / "b")
    assert all(a[f"{s}.{p}.npy"] == b[f"{s}.{p}.npy"] for s in ("val", "test") for p in PARTS)
    (xa, ya, _), (xb, yb, _) = load(tmp_path / "a", "train"), load(tmp_path / "b", "train")
    assert np.array_equal(xa, xb[:300]) and np.array_equal(ya, yb[:300])


@pytest.mark.parametrize("noise", [0.0, 0.3])
def test_sine_noise_floor_is_the_optimal_loss(tmp_path, noise):
    spec = sine_spec(noise=noise)
    spec["samples"]["train"] = 20000
    prepare_samples(spec, tmp_path)
    x, y, meta = load(tmp_path, "train")
    mse = float(np.mean((y.astype(np.float64) - np.sin(x.astype(np.float64))) ** 2))
    assert meta["optimal_loss"] == pytest.approx(noise**2)
    assert mse == pytest.approx(noise**2, rel=0.05, abs=1e-12)


def test_mnist1d_generates_offline_and_repeats(tmp_path, monkeypatch):
    def refuse(self, *args):  # a guard: generating must not open a connection
        raise AssertionError(f"network access while generating MNIST-1D: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    spec = {"source": "generator", "generator": "mnist1d", "mnist1d": {"seed": 1},
            "samples": {"train": 205, "val": 50, "test": 40}}
    state = np.random.get_state()[1].copy()
    prepare_samples(spec, tmp_path / "a")
    assert np.array_equal(np.random.get_state()[1], state)  # the package's global seeding is undone
    prepare_samples(spec, tmp_path / "b")
    assert file_bytes(tmp_path / "a") == file_bytes(tmp_path / "b")
    for split, n in (("train", 205), ("val", 50), ("test", 40)):
        x, y, meta = load(tmp_path / "a", split)
        assert x.shape == (n, 40) and x.dtype == np.float32 and y.shape == (n,) and y.dtype == np.int64
        assert set(np.unique(y)) <= set(range(10)) and len(np.unique(y)) >= 8
        assert meta["task"] == "classification" and meta["n_classes"] == 10 and meta["x_shape"] == [40]
        assert meta["y_dtype"] == "int64" and meta["optimal_loss"] is None
    train, val = load(tmp_path / "a", "train")[0], load(tmp_path / "a", "val")[0]
    assert not np.array_equal(train[:50], val)  # splits are independent draws


def images(n, seed=0, shape=(28, 28)):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), rng.integers(0, 10, size=n)


def write_image_table(path, pixels, labels, class_label=False, image_column="image", label_column="label"):
    import datasets
    from PIL import Image as PILImage

    path.parent.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_dict(
        {image_column: [PILImage.fromarray(p) for p in pixels], label_column: [int(v) for v in labels]}
    ).cast_column(image_column, datasets.Image())
    if class_label:
        table = table.cast_column(label_column, datasets.ClassLabel(num_classes=10))
    table.to_parquet(str(path))
    return path


def test_local_image_table_becomes_uint8_arrays_with_cut_splits(tmp_path):
    pixels, labels = images(300)
    path = write_image_table(tmp_path / "mnist.parquet", pixels, labels)
    spec = {"source": "local", "path": str(path), "image_column": "image", "split": {"val": 0.1, "test": 0.2}}
    prepare_samples(spec, tmp_path / "out")
    edges = {"train": (0, 210), "val": (210, 240), "test": (240, 300)}  # contiguous, from train's end
    for split, (a, b) in edges.items():
        x, y, meta = load(tmp_path / "out", split)
        assert x.dtype == np.uint8 and x.shape == (b - a, 28, 28) and y.dtype == np.int64
        assert np.array_equal(x, pixels[a:b]) and np.array_equal(y, labels[a:b])
        assert meta["x_shape"] == [28, 28] and meta["x_dtype"] == "uint8" and meta["x_scale"] == pytest.approx(1 / 255)
        assert meta["n_classes"] == int(labels.max()) + 1 and meta["task"] == "classification"
    # A sample count takes the first rows of its split.
    prepare_samples({**spec, "samples": {"train": 100, "test": 7}}, tmp_path / "few")
    x, y, meta = load(tmp_path / "few", "train")
    assert meta["n"] == 100 and np.array_equal(x, pixels[:100])
    assert np.array_equal(load(tmp_path / "few", "test")[0], pixels[240:247])
    assert load(tmp_path / "few", "val")[2]["n"] == 30
    assert local_input_files(spec) == [str(path)]


def test_hub_path_maps_splits_offline(tmp_path):
    # A local dataset folder takes the very load_dataset(id, revision=, split=) call of the hub.
    train, train_labels = images(200, seed=1)
    test, test_labels = images(60, seed=2)
    repo = tmp_path / "repo"
    write_image_table(repo / "data" / "train-00000-of-00001.parquet", train, train_labels, class_label=True)
    write_image_table(repo / "data" / "test-00000-of-00001.parquet", test, test_labels, class_label=True)
    spec = {"source": "hf", "hf": {"id": str(repo), "revision": "v1", "splits": {"train": "train", "test": "test"}},
            "image_column": "image", "split": {"val": 0.25}}
    meta = prepare_samples(spec, tmp_path / "out")
    assert np.array_equal(load(tmp_path / "out", "train")[0], train[:150])
    assert np.array_equal(load(tmp_path / "out", "val")[0], train[150:])
    x, y, test_meta = load(tmp_path / "out", "test")
    assert np.array_equal(x, test) and np.array_equal(y, test_labels)
    assert meta["n_classes"] == 10 and meta["source"]["hf"]["revision"] == "v1"
    assert meta["source"]["splits"]["val"]["cut_from_train"] and not meta["source"]["splits"]["test"]["cut_from_train"]


def test_unreachable_hub_is_one_line(tmp_path):
    spec = {"source": "hf", "hf": {"id": "ylecun/mnist", "revision": "abc123"}, "image_column": "image"}
    with pytest.raises(ConnectionError) as info:
        prepare_samples(spec, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and "cannot be reached" in message and "'ylecun/mnist'" in message
    assert "source: local" in message and "image_column: 'image'" in message
    assert not (tmp_path / "out").exists()


def error_line(spec, out):
    with pytest.raises(ValueError) as info:
        prepare_samples(spec, out)
    message = str(info.value)
    assert "\n" not in message
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
    return message


def test_bad_image_tables_are_one_line_each(tmp_path):
    pixels, labels = images(40)
    path = write_image_table(tmp_path / "ok.parquet", pixels, labels)
    spec = {"source": "local", "path": str(path), "image_column": "image"}
    out = tmp_path / "out"
    message = error_line({**spec, "samples": {"train": 50}}, out)
    assert "samples.train = 50" in message and "by 14" in message  # train holds 36 of the 40 rows
    message = error_line({**spec, "split": {"val": 0.01, "test": 0.01}}, out)
    assert "split 'test' is empty (split.test = 0.01 of 40 rows)" in message
    assert "label_column 'digit' is absent" in error_line({**spec, "label_column": "digit"}, out)
    assert "image_column 'img' is absent" in error_line({**spec, "image_column": "img"}, out)
    odd = np.concatenate([images(3)[0][:, :, :28], np.zeros((1, 28, 28), np.uint8)])
    from PIL import Image as PILImage  # one image of another shape among 28×28 ones

    import datasets
    rows = [PILImage.fromarray(p) for p in odd[:3]] + [PILImage.fromarray(np.zeros((28, 30), np.uint8))]
    table = datasets.Dataset.from_dict({"image": rows, "label": [0, 1, 2, 3]}).cast_column("image", datasets.Image())
    table.to_parquet(str(tmp_path / "odd.parquet"))
    message = error_line({**spec, "path": str(tmp_path / "odd.parquet"), "split": {"val": 0.25, "test": 0.25}}, out)
    assert "row 3" in message and "28×30" in message and "expected 28×28" in message


def test_bad_generator_settings_are_one_line(tmp_path):
    assert "x_max = -1.0" in error_line(sine_spec(x_min=0.0, x_max=-1.0), tmp_path / "out")
    assert "generator = 'hmm_language'" in error_line({"source": "generator"}, tmp_path / "out")


@pytest.mark.slow
def test_workflow_prepares_samples_and_transfer_tokens(tiny_config, tmp_path, run_snakemake):
    pixels, labels = images(120)
    table = write_image_table(tmp_path / "inputs" / "mnist.parquet", pixels, labels)
    notes = tmp_path / "inputs" / "notes.txt"
    notes.write_text("".join(f"line {i} of some other text\n" for i in range(400)))
    tiny_config["datasets"].update({
        "sine": {"source": "generator", "generator": "sine", "sine": {"noise": 0.1},
                 "samples": {"train": 64, "val": 32, "test": 32}},
        "mnist": {"source": "local", "path": str(table), "image_column": "image"},
        "notes": {"source": "local", "path": str(notes)},
    })
    config = write_config(tmp_path / "config.yaml", tiny_config)
    targets = [f"results/data/{d}/samples/{f}" for d in ("sine", "mnist") for f in FILES]
    targets += ["results/data/synthetic/char/transfer/notes.bin", "results/data/synthetic/char/transfer/notes.json"]
    result = run_snakemake(tmp_path, *targets, "--cores", "2", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    x, y, meta = load(tmp_path / "results/data/sine/samples", "train")
    assert x.shape == (64, 1) and meta["optimal_loss"] == pytest.approx(0.01)
    x, y, meta = load(tmp_path / "results/data/mnist/samples", "test")
    assert np.array_equal(x, pixels[114:]) and np.array_equal(y, labels[114:])
    transfer = json.loads((tmp_path / "results/data/synthetic/char/transfer/notes.json").read_text())
    test_text = (tmp_path / "results/data/notes/raw/test.txt").read_text()
    assert transfer["split"] == "test" and transfer["n_chars"] == len(test_text)
    assert (tmp_path / "results/data/synthetic/char/transfer/notes.bin").stat().st_size == 2 * transfer["n_tokens"]
    # Editing a local file re-runs the preparation that reads it.
    notes.write_text(notes.read_text() + "one more line\n")
    write_image_table(table, *images(130, seed=5))
    dry = run_snakemake(tmp_path, *targets, "-n", "--cores", "2", "--configfile", str(config))
    assert dry.returncode == 0, dry.stderr[-2000:]
    jobs = dict(row.split() for row in dry.stdout.splitlines() if len(row.split()) == 2 and row.split()[1].isdigit())
    assert jobs.get("prepare_samples") == "1" and jobs.get("prepare_dataset") == "1", dry.stdout
