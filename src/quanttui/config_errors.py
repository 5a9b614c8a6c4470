"""Configuration errors and the TOML key locator that gives them a line number.

`tomllib` parses TOML into plain dicts and keeps no positions, so :func:`locate_keys` scans the
text once more and maps every key path it can recognise (``("servers", 1, "name")``) to the line
it is written on. It is best effort: whatever it cannot follow simply has no line. It only ever
runs on text that `tomllib` has already accepted, but it never raises on any text.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ConfigError", "KeyPath", "format_key_path", "line_for", "locate_keys"]

KeyPath = tuple[str | int, ...]
"""A key path inside the configuration: table keys are `str`, array indices `int`."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_key_path(path: Sequence[str | int]) -> str:
    """``("servers", 1, "name")`` → ``servers[1].name``; keys that aren't bare are quoted."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
            continue
        text = part if _BARE_KEY.fullmatch(part) else _quote(part)
        out.append(f".{text}" if out else text)
    return "".join(out)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'


class ConfigError(Exception):
    """A configuration that can't be used, with where and why.

    ``str(error)`` reads ``<source>:<line>: <key>: <problem>``, e.g.
    ``/home/me/quanttui.toml:12: servers[1].nme: unknown key; did you mean `name`?``.
    The parts are also attributes, for a UI that wants to lay them out itself:

    - ``source``: the file (as given), ``"command-line override"``, or ``None``;
    - ``line``: 1-based line in ``source`` when it is a file and the key could be found;
    - ``key``: the key path (``servers[1].nme``) or ``None`` for file-level problems;
    - ``problem``: what is wrong, including any suggestion.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | Path | None = None,
        key: str | Sequence[str | int] | None = None,
        line: int | None = None,
    ) -> None:
        self.problem = problem
        self.source = None if source is None else str(source)
        self.key = key if key is None or isinstance(key, str) else format_key_path(key)
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        parts: list[str] = []
        if self.source is not None:
            parts.append(self.source if self.line is None else f"{self.source}:{self.line}")
        if self.key:
            parts.append(self.key)
        parts.append(self.problem)
        return ": ".join(parts)


def line_for(lines: dict[KeyPath, int], path: Sequence[str | int]) -> int | None:
    """The line of ``path``, else of its closest enclosing table or array that has one."""
    key = tuple(path)
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None


def locate_keys(text: str) -> dict[KeyPath, int]:
    """Map every key path written in ``text`` to its 1-based line (first occurrence wins).

    Tracks ``[table]`` headers, ``[[array.of.tables]]`` element indices, dotted keys, inline
    tables and arrays (elements get an ``int`` path part), and skips strings and comments so
    that a ``[`` or ``=`` inside them is not taken for structure.
    """
    scanner = _Scanner(text)
    with contextlib.suppress(RecursionError):  # absurdly nested arrays: keep what was found
        scanner.document()
    return scanner.lines


class _Scanner:
    """A forgiving TOML structure scanner: always makes progress, never raises on bad input."""

    _MAX_DEPTH = 64

    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.line = 1
        self.lines: dict[KeyPath, int] = {}
        self.arrays: dict[KeyPath, int] = {}  # array-of-tables path → elements seen so far
        self.table: KeyPath = ()

    # -- low level -----------------------------------------------------------------------------

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < self.n else ""

    def advance(self, k: int = 1) -> None:
        end = min(self.i + k, self.n)
        self.line += self.s.count("\n", self.i, end)
        self.i = end

    def skip_inline_ws(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.i += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.s.find("\n", self.i)
            self.i = self.n if end < 0 else end

    def skip_ws_comments_newlines(self) -> None:
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r":
                self.i += 1
            elif c == "\n":
                self.advance()
            elif c == "#":
                self.skip_comment()
            else:
                return

    def skip_rest_of_line(self) -> None:
        end = self.s.find("\n", self.i)
        self.i = self.n if end < 0 else end

    def record(self, path: KeyPath, line: int) -> None:
        self.lines.setdefault(path, line)

    # -- document --------------------------------------------------------------------------------

    def document(self) -> None:
        while True:
            self.skip_ws_comments_newlines()
            if self.i >= self.n:
                return
            start = self.i
            if self.peek() == "[":
                self.header()
            else:
                self.key_value(self.table)
            self.skip_inline_ws()
            self.skip_comment()
            if self.i == start or self.peek() not in ("\n", ""):
                self.skip_rest_of_line()  # not understood: resynchronise on the next line

    def header(self) -> None:
        line = self.line
        is_array = self.peek(1) == "["
        self.advance(2 if is_array else 1)
        self.skip_inline_ws()
        keys = self.dotted_key()
        self.skip_inline_ws()
        closing = "]]" if is_array else "]"
        if keys is None or self.s[self.i : self.i + len(closing)] != closing:
            return
        self.advance(len(closing))
        resolved: list[str | int] = []
        for j, key in enumerate(keys):
            resolved.append(key)
            count = self.arrays.get(tuple(resolved))
            if count is not None and j < len(keys) - 1:
                resolved.append(count - 1)  # [[a]] then [a.b]: b belongs to a's last element
        base: KeyPath = tuple(resolved)
        if is_array:
            index = self.arrays.get(base, 0)
            self.arrays[base] = index + 1
            self.record(base, line)
            self.table = (*base, index)
        else:
            self.table = base
        self.record(self.table, line)

    def key_value(self, table: KeyPath, depth: int = 0) -> None:
        line = self.line
        keys = self.dotted_key()
        if keys is None:
            return
        self.skip_inline_ws()
        if self.peek() != "=":
            return
        self.advance()
        self.skip_inline_ws()
        path: KeyPath = table
        for key in keys:
            path = (*path, key)
            self.record(path, line)
        self.value(path, depth)

    def dotted_key(self) -> list[str] | None:
        keys: list[str] = []
        while True:
            self.skip_inline_ws()
            key = self.simple_key()
            if key is None:
                return None
            keys.append(key)
            self.skip_inline_ws()
            if self.peek() != ".":
                return keys
            self.advance()

    def simple_key(self) -> str | None:
        c = self.peek()
        if c in ('"', "'"):
            end = self.s.find(c, self.i + 1)
            while c == '"' and end > 0 and _escaped(self.s, end):
                end = self.s.find(c, end + 1)
            newline = self.s.find("\n", self.i)
            if end < 0 or 0 <= newline < end:
                return None
            raw = self.s[self.i + 1 : end]
            self.i = end + 1
            return _unescape(raw) if c == '"' else raw
        match = _BARE_KEY.match(self.s, self.i)
        if match is None:
            return None
        self.i = match.end()
        return match.group()

    # -- values ----------------------------------------------------------------------------------

    def value(self, path: KeyPath, depth: int) -> None:
        c = self.peek()
        if depth > self._MAX_DEPTH:
            self.skip_rest_of_line()
        elif self.s.startswith('"""', self.i) or self.s.startswith("'''", self.i):
            self.multiline_string()
        elif c in ('"', "'"):
            self.string(c)
        elif c == "[":
            self.array(path, depth + 1)
        elif c == "{":
            self.inline_table(path, depth + 1)
        else:
            while self.i < self.n and self.s[self.i] not in ",]}#\n":
                self.i += 1

    def string(self, quote: str) -> None:
        j = self.i + 1
        while j < self.n and self.s[j] != "\n":
            if quote == '"' and self.s[j] == "\\":
                j += 2
                continue
            if self.s[j] == quote:
                self.i = j + 1
                return
            j += 1
        self.i = min(j, self.n)  # unterminated: stop at the end of the line

    def multiline_string(self) -> None:
        delim = self.s[self.i : self.i + 3]
        j = self.i + 3
        while j < self.n:
            if delim == '"""' and self.s[j] == "\\":
                j += 2
                continue
            if self.s.startswith(delim, j):
                j += 3
                while j < self.n and self.s[j] == delim[0]:  # up to two quotes may end the text
                    j += 1
                break
            j += 1
        self.advance(min(j, self.n) - self.i)

    def array(self, path: KeyPath, depth: int) -> None:
        self.advance()  # [
        index = 0
        while True:
            self.skip_ws_comments_newlines()
            if self.i >= self.n:
                return
            if self.peek() == "]":
                self.advance()
                return
            start = self.i
            element = (*path, index)
            self.record(element, self.line)
            self.value(element, depth)
            self.skip_ws_comments_newlines()
            if self.peek() == ",":
                self.advance()
                index += 1
            elif self.peek() != "]" and self.i == start:
                return  # not understood; give up on this value
            elif self.peek() != "]":
                index += 1  # missing comma: keep counting anyway

    def inline_table(self, path: KeyPath, depth: int) -> None:
        self.advance()  # {
        while True:
            self.skip_inline_ws()
            if self.i >= self.n or self.peek() == "\n":
                return
            if self.peek() == "}":
                self.advance()
                return
            start = self.i
            self.key_value(path, depth)
            self.skip_inline_ws()
            if self.peek() == ",":
                self.advance()
            elif self.peek() != "}" and self.i == start:
                return


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` is preceded by an odd number of backslashes."""
    count = 0
    j = index - 1
    while j >= 0 and text[j] == "\\":
        count += 1
        j -= 1
    return count % 2 == 1


_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    '"': '"',
    "\\": "\\",
    "e": "\x1b",
}
_ESCAPE_RE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|x[0-9A-Fa-f]{2}|.)")


def _unescape(raw: str) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "uUx" and len(code) > 1:
            value = int(code[1:], 16)
            return chr(value) if value <= 0x10FFFF else match.group()
        return _ESCAPES.get(code, match.group())

    return _ESCAPE_RE.sub(replace, raw)
