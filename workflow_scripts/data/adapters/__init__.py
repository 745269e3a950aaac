"""Thin ``script:`` adapters: each hands Snakemake's inputs to one plain function."""

import contextlib
import sys


@contextlib.contextmanager
def log_to(path):
    """Send the step's output and any traceback to its Snakemake log file."""
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
        except Exception as error:
            print(f"error: {error}", file=sys.stderr)
            raise
