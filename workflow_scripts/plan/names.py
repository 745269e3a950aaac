"""The names a config gives (experiments, datasets, tokenizers): one pattern, for validation and wildcards.

A name becomes a folder under results/ (``results/<experiment>/``,
``results/data/<dataset>/<tokenizer>/``), so it must be one path component that
is neither ``.`` nor ``..``: a letter or digit first, then letters, digits,
``_``, ``.`` or ``-``. rules/common.smk constrains the wildcards with the same
pattern, so a path the workflow builds parses back into the same names.
"""

from __future__ import annotations

import re

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
NAME_RULE = "1-100 of A-Z a-z 0-9 _ . -, starting with a letter or digit"
_NAME = re.compile(NAME_PATTERN)


def name_problem(name: object) -> str | None:
    """None for a good name, else what is expected of it."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    return f"expected a name of {NAME_RULE} (it names a folder under results/)"
