"""Themes as data: TOML files → `textual.theme.Theme`.

Built-in themes ship inside the package (`quanttui/tui/themes/*.toml`); users add their own as
`<user config dir>/quanttui/themes/*.toml` (a user theme with a built-in's name replaces it).
A file has the keys of `textual.theme.Theme` at the top level and an optional `[variables]`
table that overrides derived CSS variables. A bad file is reported and skipped, never fatal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from textual.color import Color, ColorParseError
from textual.theme import Theme

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_THEME = "quanttui-dark"
THEME_256 = "quanttui-256"  # taken instead of the default on a 256-colour terminal
BUILTIN_DIR = Path(__file__).parent / "themes"

_COLOURS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
            "background", "surface", "panel", "boost")
_FLOATS = ("luminosity_spread", "text_alpha")
_KEYS = {"name", "dark", "variables", *_COLOURS, *_FLOATS}


class ThemeFileError(Exception):
    pass


def user_theme_dir() -> Path:
    return Path(platformdirs.user_config_dir("quanttui")) / "themes"


def theme_from_dict(data: dict[str, Any], source: str) -> Theme:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ThemeFileError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                             f"expected {', '.join(sorted(_KEYS))}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ThemeFileError(f"{source}: `name` must be a non-empty string")
    if "primary" not in data:
        raise ThemeFileError(f"{source}: `primary` is required")
    kw: dict[str, Any] = {}
    for key in _COLOURS:
        if key in data:
            kw[key] = _colour(data[key], f"{source}: {key}")
    for key in _FLOATS:
        if key in data:
            value = data[key]
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ThemeFileError(f"{source}: `{key}` must be a number")
            kw[key] = float(value)
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise ThemeFileError(f"{source}: `dark` must be true or false")
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise ThemeFileError(f"{source}: [variables] must map names to colour strings")
    return Theme(name=name, dark=dark, variables=dict(variables), **kw)


def _colour(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{where} must be a colour string such as \"#4493F8\"")
    try:
        Color.parse(value)
    except ColorParseError as e:
        raise ThemeFileError(f"{where}: {e}") from None
    return value


def load_theme_file(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ThemeFileError(f"{path}: cannot read: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ThemeFileError(f"{path}: invalid TOML: {e}") from None
    return theme_from_dict(data, str(path))


@dataclass
class LoadedThemes:
    themes: dict[str, Theme]
    errors: list[str]


def load_themes(dirs: Iterable[Path] | None = None) -> LoadedThemes:
    """Built-ins, then the user's; later files with the same name win."""
    out: dict[str, Theme] = {}
    errors: list[str] = []
    for d in (BUILTIN_DIR, user_theme_dir()) if dirs is None else dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ThemeFileError as e:
                errors.append(str(e))
                continue
            out[theme.name] = theme
    return LoadedThemes(out, errors)
