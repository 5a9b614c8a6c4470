"""Task files in JSON Lines: one object per line, blank lines skipped, every problem named by
file and line, raised as the loader's own error type."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def read_text(path: Path, error: type[Exception]) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{path}: cannot read: {e}") from e


def objects(path: Path, error: type[Exception]
            ) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """("file:line", the line number, the object) per non-blank line."""
    for lineno, line in enumerate(read_text(path, error).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{where}: not JSON: {e.msg}") from e
        if not isinstance(obj, dict):
            raise error(f"{where}: expected a JSON object")
        yield where, lineno, obj
