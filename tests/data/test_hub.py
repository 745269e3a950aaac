"""Tables through ``datasets``: local parquet/jsonl/arrow files and the hub path, all offline."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workflow_scripts.io import read_json
from workflow_scripts.data.sources import prepare_dataset, read_split

DOCS = [f"story {i}: " + "once upon a time " * (i % 5) + ("\nthe end." if i % 3 else "") for i in range(400)]


pytestmark = pytest.mark.usefixtures("offline_hub")


def joined(docs):
    return "".join(d if d.endswith("\n") else d + "\n" for d in docs if d)


def write_parquet(path, docs, column="text", **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: docs, "id": list(range(len(docs))), **extra}), path)
    return path


def splits(folder):
    return [read_split(folder / f"{s}.txt") for s in ("train", "val", "test")]


@pytest.mark.parametrize("streaming", [False, True])
def test_parquet_files_become_contiguous_document_splits(tmp_path, streaming):
    write_parquet(tmp_path / "a.parquet", DOCS[:250])
    write_parquet(tmp_path / "b.parquet", DOCS[250:] + [None, ""])  # empty rows are skipped
    spec = {
        "source": "local",
        "path": str(tmp_path / "*.parquet"),
        "text_column": "text",
        "streaming": streaming,
        "split": {"val": 0.1, "test": 0.1},
    }
    record = prepare_dataset(spec, tmp_path / "out")
    parts = splits(tmp_path / "out")
    assert "".join(parts) == joined(DOCS)
    assert all(p.endswith("\n") for p in parts)
    assert abs(len(parts[1]) / len(joined(DOCS)) - 0.1) < 0.01
    assert record["format"] == "parquet" and record["read"]["rows"] == len(DOCS)
    assert [f["path"].rsplit("/", 1)[1] for f in record["files"]] == ["a.parquet", "b.parquet"]
    assert read_json(tmp_path / "out" / "source.json")["splits"] == record["splits"]


def test_jsonl_and_arrow_files_and_max_chars(tmp_path):
    docs = DOCS[:100]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"body": d, "n": 1}) + "\n" for d in docs))
    record = prepare_dataset(
        {"source": "local", "path": str(tmp_path / "d.jsonl"), "text_column": "body"}, tmp_path / "json"
    )
    assert "".join(splits(tmp_path / "json")) == joined(docs) and record["format"] == "json"

    table = pa.table({"body": docs})
    with pa.OSFile(str(tmp_path / "d.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    cap = len(joined(docs)) // 2
    record = prepare_dataset(
        {
            "source": "local",
            "path": str(tmp_path / "d.arrow"),
            "text_column": "body",
            "streaming": True,
            "max_chars": cap,
        },
        tmp_path / "arrow",
    )
    text = "".join(splits(tmp_path / "arrow"))
    # Whole documents up to the first that reaches the cap.
    assert joined(docs).startswith(text) and cap <= len(text) < cap + max(map(len, docs)) + 1
    assert record["read"]["truncated_at_max_chars"] and record["format"] == "arrow"


def test_absent_text_column_names_the_columns(tmp_path):
    write_parquet(tmp_path / "a.parquet", DOCS[:20], column="content")
    with pytest.raises(
        ValueError, match=r"text_column 'text' is absent: expected one of \['content', 'id'\]"
    ) as info:
        prepare_dataset({"source": "local", "path": str(tmp_path / "a.parquet")}, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("docs", [[], [None, ""]])
def test_empty_table_is_one_line(tmp_path, docs):
    write_parquet(tmp_path / "a.parquet", pa.array(docs, type=pa.string()))
    with pytest.raises(ValueError, match="hold(s)? no (text|rows)") as info:
        prepare_dataset({"source": "local", "path": str(tmp_path / "a.parquet")}, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_non_text_column_and_mixed_formats(tmp_path):
    write_parquet(tmp_path / "a.parquet", DOCS[:5])
    with pytest.raises(ValueError, match="text_column 'id' holds int values"):
        prepare_dataset(
            {"source": "local", "path": str(tmp_path / "a.parquet"), "text_column": "id"}, tmp_path / "o"
        )
    (tmp_path / "b.txt").write_text("x\n" * 100)
    with pytest.raises(ValueError, match=r"formats \['parquet', 'text'\] mixed"):
        prepare_dataset(
            {"source": "local", "path": [str(tmp_path / "a.parquet"), str(tmp_path / "b.txt")]},
            tmp_path / "o",
        )


def test_hf_source_maps_splits_and_cuts_the_missing_one(tmp_path):
    # A local dataset folder takes the very load_dataset(path, name, revision=, split=) call of the hub.
    repo = tmp_path / "repo"
    write_parquet(repo / "data" / "train-00000-of-00001.parquet", DOCS[:300])
    write_parquet(repo / "data" / "test-00000-of-00001.parquet", DOCS[300:])
    spec = {
        "source": "hf",
        "hf": {"id": str(repo), "revision": "v1", "splits": {"train": "train", "test": "test"}},
        "split": {"val": 0.2},
    }
    record = prepare_dataset(spec, tmp_path / "out")
    train, val, test = splits(tmp_path / "out")
    assert test == joined(DOCS[300:])
    assert train + val == joined(DOCS[:300]) and abs(len(val) / len(train + val) - 0.2) < 0.01
    assert record["splits"]["val"]["cut_from_train"] and not record["splits"]["test"]["cut_from_train"]
    assert record["hf"]["revision"] == "v1" and record["read"]["test"]["rows"] == 100


def test_hf_unreachable_hub_says_how_to_use_local_files(tmp_path):
    spec = {"source": "hf", "hf": {"id": "someone/corpus", "revision": "0123abc"}, "text_column": "story"}
    with pytest.raises(ConnectionError) as info:
        prepare_dataset(spec, tmp_path / "out")
    message = str(info.value)
    assert "\n" not in message and "cannot be reached" in message and "someone/corpus" in message
    assert "source: local" in message and "'story'" in message
    assert not (tmp_path / "out").exists()


def test_hf_without_revision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pinned revision"):
        prepare_dataset({"source": "hf", "hf": {"id": "someone/corpus"}}, tmp_path / "out")
