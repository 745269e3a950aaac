"""Speed of checking a token file before a cell trains, against reading it and hashing it alone.

``workflow_scripts.data.tokens.verify_tokens`` computes the SHA-256 of every byte and the largest id
(against the meta's vocabulary). The peers, measured in the same run on the same file: reading it
(the floor of any full check) and ``hashlib.sha256`` over it (the floor of a full hash). Each is
timed warm (the file in the page cache, as for the second cell of a job on one machine) and cold
(the file's pages dropped with posix_fadvise, as for the first).

    python benchmarks/token_verify_speed.py [--mib 2048]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time

import numpy as np

from workflow_scripts.data import tokens

CHUNK = 16 << 20


def read_only(path: str) -> None:
    buffer = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def hash_only(path: str) -> str:
    digest, buffer = hashlib.sha256(), bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(memoryview(buffer)[:n])
    return digest.hexdigest()


def drop_pages(path: str) -> None:
    os.sync()
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # this file's pages only
    os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=2048, help="size of the token file in MiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "train.bin")
        rng = np.random.default_rng(0)
        with open(path, "wb") as f:
            for _ in range(max(1, args.mib // 64)):
                f.write(rng.integers(0, 50257, (64 << 20) // 2, dtype="<u2").tobytes())
        size = os.path.getsize(path)
        meta = {"dtype": "uint16", "vocab_size": 50257, "sha256": hash_only(path)}

        def verify() -> None:
            tokens.verify_tokens(path, meta, cached=False)  # the check itself, not the once-per-process cache

        print(f"token file: {size / 2**20:.0f} MiB of uint16 ids, load {os.getloadavg()[0]:.1f}")
        for state in ("warm", "cold"):
            speeds = {}
            for name, fn in (("read", read_only), ("sha256", hash_only), ("verify_tokens", verify)):
                if state == "cold":
                    drop_pages(path)
                else:
                    read_only(path)
                started = time.perf_counter()
                fn() if name == "verify_tokens" else fn(path)
                speeds[name] = size / (time.perf_counter() - started) / 1e6
            print(f"{state}: " + ", ".join(f"{k} {v:.0f} MB/s" for k, v in speeds.items())
                  + f"; verify_tokens / sha256 = {speeds['verify_tokens'] / speeds['sha256']:.2f}")


if __name__ == "__main__":
    main()
