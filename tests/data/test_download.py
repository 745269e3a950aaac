"""The url source against a real local HTTP server: pinned digests, one fetch, no partial files."""

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from workflow_scripts.data.download import fetch
from workflow_scripts.plan.inputs import download_path
from workflow_scripts.data.sources import prepare_dataset, read_split
from tests.helpers import SHARED_DATA

TINYSHAKESPEARE = SHARED_DATA / "tinyshakespeare.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TEXT = "".join(f"line {i}: the quick brown fox\n" for i in range(3000)).encode()


class Server:
    """``http.server`` in a thread serving a folder; counts the GET requests per path."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
        )
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"


@pytest.fixture
def server(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "text.txt").write_bytes(TEXT)
    s = Server(tmp_path / "www")
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def test_fetch_verifies_renames_and_never_fetches_again(tmp_path, server):
    digest = hashlib.sha256(TEXT).hexdigest()
    url = server.url("text.txt")
    dest = download_path(url, digest, tmp_path / "downloads")
    assert dest.name == f"{digest[:16]}-text.txt"
    assert fetch(url, digest, dest) == dest and dest.read_bytes() == TEXT
    fetch(url, digest, dest)
    assert server.requests == ["/text.txt"]  # the verified file is kept
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # no temporary file left


def test_mismatch_deletes_the_partial_file_and_says_both_digests(tmp_path, server):
    wrong = "0" * 64
    url = server.url("text.txt")
    dest = download_path(url, wrong, tmp_path / "downloads")
    with pytest.raises(ValueError) as info:
        fetch(url, wrong, dest)
    message = str(info.value)
    assert "\n" not in message and url in message
    assert f"expected {wrong}" in message and hashlib.sha256(TEXT).hexdigest() in message
    assert list(dest.parent.iterdir()) == []


def test_a_changed_file_is_fetched_anew_and_errors_are_one_line(tmp_path, server):
    digest = hashlib.sha256(TEXT).hexdigest()
    url = server.url("text.txt")
    dest = download_path(url, digest, tmp_path)
    dest.write_bytes(b"edited by hand")
    fetch(url, digest, dest)
    assert dest.read_bytes() == TEXT and len(server.requests) == 1
    with pytest.raises(ConnectionError, match=r"download http://\S+/missing.txt: failed \(.*\)$"):
        fetch(server.url("missing.txt"), digest, tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="sha256 = 'abc': expected 64 lowercase hex digits"):
        fetch(url, "abc", tmp_path / "x")
    assert not (tmp_path / "missing.txt").exists() and not (tmp_path / "x").exists()


def test_url_source_prepares_splits_from_the_download(tmp_path, server):
    if not TINYSHAKESPEARE.exists():
        pytest.skip(f"{TINYSHAKESPEARE} is absent (real data for tests)")
    (tmp_path / "www" / "input.txt").write_bytes(TINYSHAKESPEARE.read_bytes())
    spec = {"source": "url", "url": server.url("input.txt"), "sha256": TINYSHAKESPEARE_SHA256}
    record = prepare_dataset(spec, tmp_path / "a", download_dir=tmp_path / "downloads")
    prepare_dataset(spec, tmp_path / "b", download_dir=tmp_path / "downloads")  # shares the download
    assert server.requests == ["/input.txt"]
    text = TINYSHAKESPEARE.read_text(encoding="utf-8")
    assert "".join(read_split(tmp_path / "b" / f"{s}.txt") for s in ("train", "val", "test")) == text
    assert record["files"][0]["sha256"] == TINYSHAKESPEARE_SHA256 and record["url"] == spec["url"]


@pytest.mark.slow
def test_snakemake_downloads_once_for_two_datasets_then_tokenizes(tmp_path, server, run_snakemake):
    """Through the rules: one download shared by two url datasets, and a local parquet dataset."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tests.helpers import write_config

    digest = hashlib.sha256(TEXT).hexdigest()
    spec = {"source": "url", "url": server.url("text.txt"), "sha256": digest}
    pq.write_table(pa.table({"story": TEXT.decode().splitlines()}), tmp_path / "stories.parquet")
    config = {
        "datasets": {
            "a": spec,
            "b": {**spec, "split": {"val": 0.1, "test": 0.1}},
            "p": {"source": "local", "path": "stories.parquet", "text_column": "story", "streaming": True},
        },
        "tokenizers": {"char": {"kind": "char"}},
        "experiments": {
            "e": {
                "dataset": "a",
                "tokenizer": "char",
                "models": [{"n_layer": 1, "d_model": 8, "n_head": 2}],
                "data_sizes": [4096],
                "training": {"batch_size": 4},
            }
        },
    }
    config_path = write_config(tmp_path / "c.yaml", config)
    targets = [f"results/data/{d}/char/{s}.bin" for d in ("a", "b", "p") for s in ("train", "val")]
    result = run_snakemake(tmp_path, *targets, "--cores", "2", "--configfile", str(config_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert server.requests == ["/text.txt"]
    assert (tmp_path / "resources/downloads" / f"{digest[:16]}-text.txt").read_bytes() == TEXT
    parquet = "".join(
        (tmp_path / f"results/data/p/raw/{s}.txt").read_text() for s in ("train", "val", "test")
    )
    assert parquet == TEXT.decode()
    again = run_snakemake(tmp_path, *targets, "-n", "--cores", "2", "--configfile", str(config_path))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
