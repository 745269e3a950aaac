"""Tokenization throughput and memory of the data stage, against plain ``tokenizers`` in the same run.

    python benchmarks/tokenize_throughput.py            # ≈ 100 MB of text; a few minutes on 2 cores
    python benchmarks/tokenize_throughput.py --mb 20    # quicker

For the char and BPE tokenizers (trained on tinyshakespeare), it times the
project's path (``tokens.tokenize_split``: chunked ``encode_batch`` on every
core, streamed to a token file) against a single-threaded ``tokenizers``
encode of the same text, one tinyshakespeare copy per ``encode`` call (on the
first ``--peer-mb`` of it: the rate of identical copies settles long before
100 MB, and the char peer is slow), and prints MB/s of UTF-8 text and the
ratio, last. First it measures the peak RSS (``ru_maxrss``) of
``tokenize_split`` on 10 MB and 200 MB of text, each in a fresh process:
streaming keeps them nearly equal. (Those run first: Linux carries a parent's
high-water RSS into ``ru_maxrss`` of a child it forks.)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TINYSHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def repeated_text(source: Path, mb: float, out: Path) -> int:
    """``source`` written again and again to ``out`` until it holds at least ``mb`` MB; returns bytes."""
    data = source.read_bytes()
    copies = max(1, -(-int(mb * 1e6) // len(data)))
    with open(out, "wb") as f:
        for _ in range(copies):
            f.write(data)
    return copies * len(data)


def project_mb_s(tokenizer: Path, text: Path, n_bytes: int, folder: Path) -> tuple[float, int]:
    from workflow_scripts.data.tokens import tokenize_split

    start = time.perf_counter()
    meta = tokenize_split(tokenizer, text, folder / "t.bin", folder / "t.json")
    return n_bytes / 1e6 / (time.perf_counter() - start), meta["n_tokens"]


def peer_mb_s(tokenizer: Path, piece: str, copies: int, n_bytes: int) -> tuple[float, int]:
    # One encode call is sequential in tokenizers (only batches use its thread pool).
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer))
    n_tokens = 0
    start = time.perf_counter()
    for _ in range(copies):
        n_tokens += len(tok.encode(piece, add_special_tokens=False).ids)
    return n_bytes / 1e6 / (time.perf_counter() - start), n_tokens


def peak_rss_mb(tokenizer: Path, mb: float, folder: Path) -> float:
    text = folder / f"rss_{mb:g}.txt"
    repeated_text(TINYSHAKESPEARE, mb, text)
    child = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(tokenizer), str(text)],
        capture_output=True,
        text=True,
        check=True,
    )
    text.unlink()
    return float(child.stdout.split()[-1])


def rss_child(tokenizer: str, text: str) -> None:
    from workflow_scripts.data.tokens import tokenize_split

    out = Path(text).with_suffix(".bin")
    tokenize_split(tokenizer, text, out, out.with_suffix(".json"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux → MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100, help="MB of text timed per tokenizer (default 100)")
    parser.add_argument("--peer-mb", type=float, default=20, help="MB of it timed for the peer (default 20)")
    parser.add_argument("--bpe-vocab", type=int, default=4096, help="BPE vocabulary (default 4096)")
    parser.add_argument("--rss-mb", type=float, nargs=2, default=(10, 200), help="text sizes of the RSS runs")
    parser.add_argument("--rss-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(*args.rss_child)
    if not TINYSHAKESPEARE.exists():
        sys.exit(f"{TINYSHAKESPEARE} is absent: the benchmark reads it")

    from workflow_scripts.data.tokenizer import train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokenizers = {"char": {"kind": "char"}, "bpe": {"kind": "bpe", "vocab_size": args.bpe_vocab}}
        for kind, spec in tokenizers.items():
            train_tokenizer(spec, TINYSHAKESPEARE, folder / f"{kind}.json")
        small, large = args.rss_mb
        rss = {mb: peak_rss_mb(folder / "bpe.json", mb, folder) for mb in (small, large)}
        print(
            f"peak RSS of tokenize_split (bpe): {rss[small]:.0f} MiB at {small:g} MB, "
            f"{rss[large]:.0f} MiB at {large:g} MB ({rss[large] / rss[small]:.2f}×)"
        )

        piece = TINYSHAKESPEARE.read_text(encoding="utf-8")
        text = folder / "text.txt"
        n_bytes = repeated_text(TINYSHAKESPEARE, args.mb, text)
        copy_bytes = len(piece.encode("utf-8"))
        copies = n_bytes // copy_bytes
        peer_copies = max(1, min(copies, round(args.peer_mb * 1e6 / copy_bytes)))
        print(
            f"text: tinyshakespeare × {copies} = {n_bytes / 1e6:.1f} MB (peer: × {peer_copies}); "
            f"{os.cpu_count()} CPUs"
        )
        ratios = {}
        for kind in tokenizers:
            tok = folder / f"{kind}.json"
            ours, n_ours = project_mb_s(tok, text, n_bytes, folder)
            peer, n_peer = peer_mb_s(tok, piece, peer_copies, peer_copies * copy_bytes)
            # The same tokens, or the timing means nothing.
            assert n_ours == n_peer * copies // peer_copies, (kind, n_ours, n_peer)
            ratios[kind] = ours / peer
            print(
                f"{kind}: tokenize_split {ours:.2f} MB/s, single-threaded encode {peer:.2f} MB/s, "
                f"{n_ours} tokens"
            )
        print(
            "ratio tokenize_split / single-threaded encode: "
            + ", ".join(f"{kind} {r:.2f}×" for kind, r in ratios.items())
        )


if __name__ == "__main__":
    main()
