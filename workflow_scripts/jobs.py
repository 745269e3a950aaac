"""How a job's process ends: one line naming the path and the cause on failure, no teardown on success.

``run`` is the end of the training entry points (``python -m ...``), ``log_to`` that of the
data stage's ``script:`` adapters (workflow_scripts.data.adapters).

A job's stderr is its Snakemake log (``> {log} 2>&1``), so a failure prints the
full traceback there for a developer and then one last line for the user, e.g.
``error: results/x/runs/.../metrics.json: no space left on device``. Outputs are
written atomically (workflow_scripts.io.atomic_path), so a failed or interrupted
job leaves nothing partial and its rerun resumes from the last checkpoint.

On success the process ends with ``os._exit`` once stdout and stderr are
flushed: every output file is closed and moved into place by then, and the
interpreter's teardown (freeing torch's modules, 0.7-1.2 s per process, GUIDE
sec. 5) would only delay the next job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import traceback
from typing import Callable, Iterator, NoReturn

from workflow_scripts.io import WRITING

# Causes worded for users, by errno; others get os.strerror's wording.
_CAUSES = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "no such file or directory",
    errno.EISDIR: "is a directory, expected a file",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EIO: "input/output error (a failing disk or network file system)",
}
INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself, or one it was raised from or during (torch's writers
    turn a failed Python write into a RuntimeError whose context is the OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno is not None:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _written_path(error: BaseException) -> str | None:
    """The destination of the atomic write (workflow_scripts.io.atomic_path) the error broke, if any."""
    return getattr(error, WRITING, None)


def describe(error: BaseException) -> str:
    """One line: ``error: <path>: <cause>`` for file-system errors, else the error's own first line."""
    if isinstance(error, KeyboardInterrupt):
        return ("error: interrupted (SIGINT, e.g. Ctrl-C): no output is left half-written; "
                "run the job again to resume from its last checkpoint")
    os_error = _os_error(error)
    # The output being written, else the file the system named (e.g. an input that cannot be read).
    path = _written_path(error) or (os_error.filename if os_error is not None else None)
    if os_error is not None:
        cause = _CAUSES.get(os_error.errno, os.strerror(os_error.errno).lower())
        return f"error: {os.fspath(path) if path else '(path unknown)'}: {cause}"
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else type(error).__name__
    ours = isinstance(error, (ValueError, FileNotFoundError))  # the project's own one-line errors
    if not ours:
        message = f"{type(error).__name__}: {message}"  # unexpected: say what kind, for a bug report
    if path and not ours:
        # A writer that hides the system's error (torch.save to a path): the space left is the likely cause.
        message += f" ({_free_space(path)} free on its file system)"
    return f"error: {path}: {message}" if path and path not in message else f"error: {message}"


def _free_space(path: str) -> str:
    try:
        free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    except OSError:
        return "unknown space"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if free >= size:
            return f"{free / size:.1f} {unit}"
    return f"{free} bytes"


def finish() -> NoReturn:
    """End a successful job now: flush what it printed, skip the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream has nothing left to lose
            pass
    os._exit(0)


def run(main: Callable[[], object]) -> NoReturn:
    """Run a job's ``main()`` as its process: on failure the traceback, then one line, on stderr
    (exit 1, or 130 when interrupted); on success ``finish()``. ``sys.exit`` inside main passes through."""
    try:
        main()
    except (Exception, KeyboardInterrupt) as error:
        traceback.print_exc()
        print(describe(error), file=sys.stderr, flush=True)
        sys.exit(INTERRUPTED if isinstance(error, KeyboardInterrupt) else 1)
    finish()


@contextlib.contextmanager
def log_to(path: str | os.PathLike) -> Iterator[None]:
    """A ``script:`` step's output and any traceback in its Snakemake log; a failure ends the step
    with one line, the log's last and the step's own stderr's, and exit status 1 (130 interrupted)."""
    failure = None
    with open(path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
        except (Exception, KeyboardInterrupt) as error:
            traceback.print_exc()
            failure = (describe(error), INTERRUPTED if isinstance(error, KeyboardInterrupt) else 1)
            print(failure[0], file=sys.stderr, flush=True)
    if failure is not None:
        print(failure[0], file=sys.stderr, flush=True)
        sys.exit(failure[1])
