"""quanttui's configuration: TOML → typed, validated, frozen settings.

Lookup (:func:`find_config_file`): the ``--config`` path, else ``./quanttui.toml``, else
``<user config dir>/quanttui/config.toml`` (``platformdirs``), else built-in defaults.
:func:`load_config` reads that file, applies command-line overrides (dotted keys) on top, and
validates the result. Every problem is a :class:`ConfigError` naming the file, the key path, the
line, what is wrong and, for a misspelt key or value, the closest valid one.

Every setting, its default and its meaning is in ``config.example.toml`` at the project root.

After loading:

- ``servers[i].model`` and ``prompts.files`` are absolute paths: relative ones are taken from the
  config file's directory (from the current directory when they come from an override or there is
  no file); ``~`` is expanded. Nothing is checked for existence here.
- ``servers[i].url`` has no trailing ``/``; ``servers[i].launch`` is set (defaults filled in)
  exactly when the server is managed (``model``).
- ``servers[i].api_key`` holds the key, also when it came from ``api_key_env`` (which then still
  names the variable it was read from).
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect as mi
import platformdirs

from quanttui.config_errors import ConfigError, KeyPath, line_for, locate_keys
from quanttui.core.llama.params import Sampling
from quanttui.core.llama.result import Endpoint
from quanttui.core.llama.urls import url_problem
from quanttui.core.run.pairing import DEFAULT_DRIFT_FLOOR
from quanttui.core.run.schedule import Schedule
from quanttui.core.secrets import MASK, mask_args, mask_url
from quanttui.core.suites.prompts import SUITE_NAMES
from quanttui.core.suites.task_sets import TASK_SETS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "APP_NAME",
    "BUILTIN_SUITES",
    "CONFIG_FILENAME",
    "OVERRIDE_SOURCE",
    "USER_CONFIG_FILENAME",
    "Config",
    "ConfigError",
    "GatesConfig",
    "GenerationConfig",
    "HardwareConfig",
    "LaunchConfig",
    "ModelsConfig",
    "PromptsConfig",
    "QualityConfig",
    "RunConfig",
    "ServerConfig",
    "TimeoutsConfig",
    "config_from_dict",
    "config_to_dict",
    "find_config_file",
    "load_config",
    "parse_overrides",
    "user_config_path",
]

APP_NAME = "quanttui"
CONFIG_FILENAME = "quanttui.toml"
"""Looked up in the current directory."""
USER_CONFIG_FILENAME = "config.toml"
"""Looked up in ``platformdirs.user_config_dir("quanttui")``."""
OVERRIDE_SOURCE = "command-line override"
"""``ConfigError.source`` for a problem in an override rather than in the file."""

BUILTIN_SUITES = SUITE_NAMES
"""Names of the prompt suites that ship with quanttui (`core.suites.prompts`)."""

MAX_SERVERS = 16


_NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]
_Seconds = Annotated[float, msgspec.Meta(gt=0.0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of every configuration struct: immutable, unknown keys rejected."""


class RunConfig(_Section, frozen=True):
    """``[run]``: what a comparison run does."""

    endpoint: Endpoint = "completion"
    schedule: Schedule = "simultaneous"
    repetitions: Annotated[int, msgspec.Meta(ge=1)] = 1
    warmup: Annotated[int, msgspec.Meta(ge=0)] = 1
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=64)] = 1
    order_seed: int = 0
    export_dir: _NonEmptyStr = "quanttui-exports"
    theme: _NonEmptyStr = "quanttui-dark"
    # TUI frames per second while text streams (sparklines and status update once a second).
    refresh_hz: Annotated[float, msgspec.Meta(ge=0.5, le=20.0)] = 2.0
    # Add repetitions until each decode ratio is decided (its 95% interval within
    # ± decide_half_width, or a 99% one excluding 1) or decide_budget_s has no room for another
    # and a confirmation; then as many again, which alone give the reported intervals
    # (core.run.decide).
    until_decided: bool = False
    decide_half_width: Annotated[float, msgspec.Meta(gt=0.0, le=0.5)] = 0.03
    decide_budget_s: Annotated[float, msgspec.Meta(gt=0.0)] = 600.0
    # Differences between servers measured in separate blocks of time (the sequential
    # schedule, ladder passes, two stored runs) must exceed ± this share of the first to be
    # called: nothing cancels the machine's drift between the blocks (core.run.pairing).
    drift_floor: Annotated[float, msgspec.Meta(ge=0.0, le=0.5)] = DEFAULT_DRIFT_FLOOR
    # How tokens after the first are timed (docs/metrics.md): "server", by llama-server's own
    # running timings, read a few times a second; "arrival", each read stamped, waking once per
    # token (~1% of a core more on a small VM, taken from the servers).
    token_times: Literal["server", "arrival"] = "server"


class GenerationConfig(Sampling, frozen=True, kw_only=True):
    """``[generation]``: sampling fields sent with every request, to every server (the fields
    and their limits are `core.llama.params.Sampling`'s)."""


class TimeoutsConfig(_Section, frozen=True):
    """``[timeouts]``, in seconds."""

    connect: _Seconds = 5.0
    read: _Seconds = 120.0
    total: _Seconds = 900.0


class HardwareConfig(_Section, frozen=True):
    """``[hardware]``: host and GPU sampling."""

    poll_interval: Annotated[float, msgspec.Meta(ge=0.05, le=60.0)] = 1.0


class LaunchConfig(_Section, frozen=True):
    """``[servers.launch]``: how quanttui starts llama-server for a managed ``model``."""

    # at most llama.cpp's GGML_MAX_N_THREADS, the most its thread pools hold (llama-server
    # aborted starting with -t 99999, without a word why)
    threads: Annotated[int, msgspec.Meta(ge=-1, le=512)] = 1
    ctx_size: Annotated[int, msgspec.Meta(ge=0)] = 2048
    parallel: Annotated[int, msgspec.Meta(ge=1)] = 1
    n_gpu_layers: Annotated[int, msgspec.Meta(ge=-2)] = 0
    cpus: tuple[Annotated[int, msgspec.Meta(ge=0)], ...] = ()
    extra_args: tuple[str, ...] = ()


class ModelsConfig(_Section, frozen=True):
    """``[models]``: where GGUF files are looked for, and how the TUI's model pane starts them."""

    dirs: tuple[_NonEmptyStr, ...] = ()
    default_places: bool = True  # also ~/models, the llama.cpp / Hugging Face / LM Studio caches
    launch: LaunchConfig = msgspec.field(default_factory=LaunchConfig)
    pin_cores: bool = False  # servers started together get disjoint blocks of cores


class ServerConfig(_Section, frozen=True):
    """One ``[[servers]]`` entry: attach to ``url`` or launch ``model`` (exactly one)."""

    name: _NonEmptyStr
    url: _NonEmptyStr | None = None
    model: _NonEmptyStr | None = None
    api_key: _NonEmptyStr | None = None
    api_key_env: _NonEmptyStr | None = None
    node_exporter_url: _NonEmptyStr | None = None
    dcgm_exporter_url: _NonEmptyStr | None = None
    launch: LaunchConfig | None = None

    @property
    def managed(self) -> bool:
        """Whether quanttui launches this server (``model``) rather than attaching (``url``)."""
        return self.model is not None


class PromptsConfig(_Section, frozen=True):
    """``[prompts]``: what to send. All three sources are used, in this order."""

    suites: tuple[_NonEmptyStr, ...] = ("quick",)
    files: tuple[_NonEmptyStr, ...] = ()
    inline: tuple[_NonEmptyStr, ...] = ()


class QualityConfig(_Section, frozen=True):
    """``[quality]``: what the task part of the quality step scores (``--quality``, ``--tasks``).
    Running model-written code (HumanEval) also needs ``--allow-code-execution``, which is a
    command-line flag only."""

    tasks: tuple[_NonEmptyStr, ...] = ()  # "builtin", "humaneval", .jsonl files; () = builtin
    tasks_limit: Annotated[int, msgspec.Meta(ge=1)] | None = None  # first N items of each


class GatesConfig(_Section, frozen=True):
    """``[gates]``: optional pass/fail thresholds for CI; ``None`` means the gate is off."""

    min_decode_ratio: Annotated[float, msgspec.Meta(gt=0.0)] | None = None
    min_same_top1: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None


class Config(_Section, frozen=True):
    """The whole configuration. ``Config()`` is the built-in defaults."""

    run: RunConfig = msgspec.field(default_factory=RunConfig)
    generation: GenerationConfig = msgspec.field(default_factory=GenerationConfig)
    timeouts: TimeoutsConfig = msgspec.field(default_factory=TimeoutsConfig)
    hardware: HardwareConfig = msgspec.field(default_factory=HardwareConfig)
    servers: Annotated[tuple[ServerConfig, ...], msgspec.Meta(max_length=MAX_SERVERS)] = ()
    prompts: PromptsConfig = msgspec.field(default_factory=PromptsConfig)
    models: ModelsConfig = msgspec.field(default_factory=ModelsConfig)
    gates: GatesConfig = msgspec.field(default_factory=GatesConfig)
    quality: QualityConfig = msgspec.field(default_factory=QualityConfig)

    def server(self, name: str) -> ServerConfig:
        """The server called ``name`` (``KeyError`` if none)."""
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------


def user_config_path() -> Path:
    """``<user config dir>/quanttui/config.toml`` (whether or not it exists)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / USER_CONFIG_FILENAME


def find_config_file(explicit: Path | None = None) -> Path | None:
    """The config file to use: ``explicit``, else ``./quanttui.toml``, else the user's one.

    ``None`` when there is none (use the defaults). An ``explicit`` path that doesn't exist or
    isn't a file is a :class:`ConfigError`: asking for a file and silently not using it would be
    worse than stopping.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise ConfigError("config file not found", source=path)
        if not path.is_file():
            raise ConfigError("not a file (expected a TOML config file)", source=path)
        return path
    for candidate in (Path.cwd() / CONFIG_FILENAME, user_config_path()):
        if candidate.is_file():
            return candidate
    return None


# ----------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------


def load_config(
    path: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Read ``path`` (or only the defaults when ``None``), apply ``overrides``, validate.

    ``path`` is used as given: pass ``find_config_file(cli_option)`` to get the lookup order.
    ``overrides`` maps dotted keys to values, e.g. ``{"run.schedule": "alternating",
    "generation.n_predict": 64, "servers[0].url": "http://127.0.0.1:8081"}``; a string value for a
    non-string setting is read as a TOML value (``"64"`` → 64, ``'["a"]'`` → ``["a"]``).
    ``env`` (default ``os.environ``) resolves ``api_key_env``.

    Raises :class:`ConfigError` for every problem, never anything else.
    """
    if path is None:
        return config_from_dict({}, overrides=overrides, env=env)
    path = Path(path)
    text = _read_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"at line (\d+)", message)
        raise ConfigError(
            f"invalid TOML: {message}",
            source=path,
            line=int(match.group(1)) if match else None,
        ) from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply", source=path) from None
    return _build(
        data,
        source=path,
        base_dir=path.expanduser().absolute().parent,
        lines=_Lines(text),
        overrides=overrides,
        env=env,
    )


def config_from_dict(
    data: Mapping[str, Any],
    *,
    source: str | Path | None = None,
    base_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Validate an already-parsed TOML document (e.g. one a settings screen edited).

    Same rules as :func:`load_config`; relative paths are taken from ``base_dir`` (default: the
    current directory), and errors have no line numbers.
    """
    return _build(
        data,
        source=None if source is None else str(source),
        base_dir=base_dir,
        lines=_Lines(None),
        overrides=overrides,
        env=env,
    )


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``["run.schedule=alternating", "generation.n_predict=64"]`` → a dict for ``load_config``.

    Values stay strings; :func:`load_config` reads them according to the setting's type. A later
    item for the same key wins.
    """
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"expected KEY=VALUE (e.g. run.schedule=alternating), got {item!r}",
                source=OVERRIDE_SOURCE,
            )
        result[key] = value.strip()
    return result


def _read_text(path: Path) -> str:
    try:
        raw = path.expanduser().read_bytes()
    except FileNotFoundError:
        raise ConfigError("config file not found", source=path) from None
    except IsADirectoryError:
        raise ConfigError("not a file (expected a TOML config file)", source=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", source=path) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not valid UTF-8 (byte {exc.start}): TOML files must be UTF-8", source=path, line=line
        ) from None


class _Lines:
    """Key path → line, computed only when an error needs it."""

    def __init__(self, text: str | None) -> None:
        self._text = text
        self._map: dict[KeyPath, int] | None = None

    def get(self, path: KeyPath) -> int | None:
        if self._text is None:
            return None
        if self._map is None:
            self._map = locate_keys(self._text)
        return line_for(self._map, path)


class _Context:
    """Where the data came from, so that errors point at the file line or the override."""

    def __init__(self, source: str | Path | None, lines: _Lines) -> None:
        self.source = source
        self.lines = lines
        self.overridden: list[KeyPath] = []

    def from_override(self, path: KeyPath) -> bool:
        return any(path[: len(o)] == o for o in self.overridden)

    def error(self, path: KeyPath, problem: str) -> ConfigError:
        if self.from_override(path):
            return ConfigError(problem, source=OVERRIDE_SOURCE, key=path)
        return ConfigError(problem, source=self.source, key=path, line=self.lines.get(path))


def _build(
    data: Mapping[str, Any],
    *,
    source: str | Path | None,
    base_dir: Path | None,
    lines: _Lines,
    overrides: Mapping[str, Any] | None,
    env: Mapping[str, str] | None,
) -> Config:
    ctx = _Context(source, lines)
    document: dict[str, Any] = _copy_tree(data)
    if overrides:
        _apply_overrides(document, overrides, ctx)
    _check_keys_and_floats(document, _schema(), (), ctx)
    try:
        config = msgspec.convert(document, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise _translate(str(exc), document, ctx) from None
    except RecursionError:
        raise ctx.error((), "nested too deeply") from None
    return _finish(config, document, ctx, base_dir, os.environ if env is None else env)


def _copy_tree(value: Any) -> Any:
    """A copy of the mutable containers, so that overrides never touch the caller's data."""
    if isinstance(value, Mapping):
        return {k: _copy_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy_tree(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------
# Overrides
# ----------------------------------------------------------------------------------------------

_OVERRIDE_KEY = re.compile(r"[^.\[\]]+(?:\[\d+\])*(?:\.[^.\[\]]+(?:\[\d+\])*)*")
_OVERRIDE_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parse_override_key(key: str) -> KeyPath | None:
    """``servers[0].url`` or ``servers.0.url`` → ``("servers", 0, "url")``; None if malformed."""
    key = key.strip()
    if not _OVERRIDE_KEY.fullmatch(key):
        return None
    parts: list[str | int] = []
    for name, index in _OVERRIDE_PART.findall(key):
        if index:
            parts.append(int(index))
            continue
        name = name.strip()
        if not name:
            return None
        parts.append(int(name) if name.isdigit() and parts else name)
    return tuple(parts)


def _apply_overrides(document: dict[str, Any], overrides: Mapping[str, Any], ctx: _Context) -> None:
    """Set each dotted key in ``document``, creating tables on the way.

    An index one past the end of an array appends to it, so that ``servers[0].name=a`` and
    ``servers[0].url=...`` can add a server where the file has none.
    """
    for raw_key, raw_value in overrides.items():
        path = _parse_override_key(str(raw_key))
        if path is None:
            raise ConfigError(
                "malformed key: expected dotted keys such as run.schedule or servers[0].url",
                source=OVERRIDE_SOURCE,
                key=str(raw_key),
            )
        ctx.overridden.append(path)
        value = _coerce_override(raw_value, _type_at(path))
        node: Any = document
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if isinstance(part, int):
                if not isinstance(node, list) or part > len(node):
                    count = len(node) if isinstance(node, list) else 0
                    raise ConfigError(
                        f"no such entry (there are {count}; use index {count} to add one)",
                        source=OVERRIDE_SOURCE,
                        key=path[: depth + 1],
                    )
                if part == len(node):
                    node.append({})
            elif not isinstance(node, dict):
                raise ConfigError(
                    f"cannot set a key inside {_describe_value(node)}",
                    source=OVERRIDE_SOURCE,
                    key=path[:depth],
                )
            elif part not in node and not last:
                node[part] = [] if isinstance(path[depth + 1], int) else {}
            if last:
                node[part] = value
            else:
                node = node[part]


def _coerce_override(value: Any, target: mi.Type | None) -> Any:
    """CLI values arrive as strings: read them as TOML values unless the setting is a string."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if not isinstance(value, str) or target is None or _accepts_str(target):
        return value
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return value  # not a TOML value: validation reports it as a string


def _accepts_str(t: mi.Type) -> bool:
    if isinstance(t, (mi.StrType, mi.AnyType)):
        return True
    if isinstance(t, mi.LiteralType):
        return any(isinstance(v, str) for v in t.values)
    if isinstance(t, mi.UnionType):
        return any(_accepts_str(m) for m in t.types)
    return False


# ----------------------------------------------------------------------------------------------
# Schema walking
# ----------------------------------------------------------------------------------------------

_SCHEMA: mi.StructType | None = None


def _schema() -> mi.StructType:
    global _SCHEMA
    if _SCHEMA is None:
        info = mi.type_info(Config)
        assert isinstance(info, mi.StructType)
        _SCHEMA = info
    return _SCHEMA


def _unwrap(t: mi.Type) -> mi.Type:
    """``X | None`` → ``X``."""
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if len(members) == 1:
            return members[0]
    return t


def _field_type(struct: mi.StructType, name: str) -> mi.Type | None:
    for f in struct.fields:
        if f.encode_name == name:
            return f.type
    return None


def _type_at(path: KeyPath) -> mi.Type | None:
    t: mi.Type | None = _schema()
    for part in path:
        t = None if t is None else _unwrap(t)
        if isinstance(part, int):
            t = t.item_type if isinstance(t, (mi.VarTupleType, mi.ListType)) else None
        elif isinstance(t, mi.StructType):
            t = _field_type(t, part)
        else:
            return None
    return t


def _value_at(document: Any, path: KeyPath) -> tuple[bool, Any]:
    node = document
    for part in path:
        if isinstance(part, int):
            if not (isinstance(node, list) and 0 <= part < len(node)):
                return False, None
        elif not (isinstance(node, dict) and part in node):
            return False, None
        node = node[part]
    return True, node


def _section_label(path: KeyPath) -> str:
    if not path:
        return "at the top level"
    named = ".".join(p for p in path if isinstance(p, str))
    return f"in [[{named}]]" if isinstance(path[-1], int) else f"in [{named}]"


def _check_keys_and_floats(node: Any, struct: mi.StructType, path: KeyPath, ctx: _Context) -> None:
    """Reject unknown keys (with a suggestion) and non-finite floats, before msgspec runs.

    msgspec would also reject unknown keys, but only with its path and without the choices.
    """
    if not isinstance(node, dict):
        return  # msgspec reports the wrong type
    valid = [f.encode_name for f in struct.fields]
    for key, value in node.items():
        here = (*path, key)
        field_type = _field_type(struct, key) if isinstance(key, str) else None
        if field_type is None:
            raise ctx.error(here, f"unknown key {_section_label(path)}{_suggest(str(key), valid)}")
        t = _unwrap(field_type)
        if isinstance(t, mi.StructType):
            _check_keys_and_floats(value, t, here, ctx)
        elif isinstance(t, (mi.VarTupleType, mi.ListType)) and isinstance(value, list):
            item = _unwrap(t.item_type)
            if isinstance(item, mi.StructType):
                for i, element in enumerate(value):
                    _check_keys_and_floats(element, item, (*here, i), ctx)
        elif isinstance(t, mi.FloatType) and isinstance(value, float) and not math.isfinite(value):
            raise ctx.error(here, f"must be a finite number, got {_toml_repr(value)}")


def _suggest(word: str, choices: Iterable[str], *, list_all: bool = True) -> str:
    options = list(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean `{close[0]}`?"
    if list_all and options:
        return "; valid keys: " + ", ".join(options)
    return ""


# ----------------------------------------------------------------------------------------------
# msgspec errors → ConfigError
# ----------------------------------------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>[^`]*)`$", re.S)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_MISSING = re.compile(r"Object missing required field `(?P<name>.*)`$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>.*)`$", re.S)
_WRONG_TYPE = re.compile(r"Expected `[^`]*`, got `[^`]*`$")
_LENGTH = re.compile(r"Expected `[^`]*` of length (?P<op>>=|<=) (?P<n>\d+)$")
_BOUND = re.compile(r"Expected `[^`]*` (?:>=|>|<=|<) \S+$")


def _translate(message: str, document: dict[str, Any], ctx: _Context) -> ConfigError:
    msg: str = message
    path: KeyPath = ()
    if match := _AT.match(message):
        msg, path = match.group("msg"), _parse_error_path(match.group("path"))
    found, value = _value_at(document, path)
    target = _type_at(path)
    t = None if target is None else _unwrap(target)

    if m := _MISSING.match(msg):
        return ctx.error(path, f"missing required key `{m.group('name')}`")
    if m := _UNKNOWN.match(msg):
        struct = t if isinstance(t, mi.StructType) else None
        valid = [f.encode_name for f in struct.fields] if struct else []
        name = m.group("name")
        hint = _suggest(name, valid)
        return ctx.error((*path, name), f"unknown key {_section_label(path)}{hint}")
    if msg.startswith("Invalid enum value") and isinstance(t, mi.LiteralType):
        allowed = [str(v) for v in t.values]
        choices = ", ".join(f'"{v}"' for v in allowed)
        hint = _suggest(str(value), allowed, list_all=False) if isinstance(value, str) else ""
        return ctx.error(
            path, f"invalid value {_toml_repr(value)}: expected one of {choices}{hint}"
        )
    got = f", got {_describe_value(value)}" if found else ""
    if _WRONG_TYPE.match(msg) and target is not None:
        return ctx.error(path, f"wrong type: expected {_describe_type(target)}{got}")
    if m := _LENGTH.match(msg):
        n, at_least = int(m.group("n")), m.group("op") == ">="
        if isinstance(value, str):
            if at_least and n == 1:
                return ctx.error(path, "must not be empty")
            bound = "at least" if at_least else "at most"
            return ctx.error(path, f"wrong length: must be {bound} {n} characters")
        count = len(value) if isinstance(value, list) else 0
        if at_least:
            return ctx.error(path, f"too few entries: at least {n} needed, got {count}")
        return ctx.error(path, f"too many entries: at most {n} allowed, got {count}")
    if _BOUND.match(msg) and t is not None:
        return ctx.error(
            path, f"out of range: must be {_describe_bounds(t)}, got {_toml_repr(value)}"
        )
    return ctx.error(path, msg)


def _parse_error_path(text: str) -> KeyPath:
    parts: list[str | int] = []
    for name, index in _PATH_PART.findall(text):
        parts.append(int(index) if index else name)
    return tuple(parts)


def _describe_bounds(t: mi.Type) -> str:
    lo = getattr(t, "ge", None), getattr(t, "gt", None)
    hi = getattr(t, "le", None), getattr(t, "lt", None)
    if lo[0] is not None and hi[0] is not None:
        return f"between {_num(lo[0])} and {_num(hi[0])}"
    parts = []
    if lo[0] is not None:
        parts.append(f"≥ {_num(lo[0])}")
    if lo[1] is not None:
        parts.append(f"> {_num(lo[1])}")
    if hi[0] is not None:
        parts.append(f"≤ {_num(hi[0])}")
    if hi[1] is not None:
        parts.append(f"< {_num(hi[1])}")
    return " and ".join(parts) or "in range"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _describe_type(t: mi.Type) -> str:
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        return " or ".join(_describe_type(m) for m in members)
    if isinstance(t, mi.BoolType):
        return "a boolean (true or false)"
    if isinstance(t, mi.IntType):
        return "an integer"
    if isinstance(t, mi.FloatType):
        return "a number"
    if isinstance(t, mi.StrType):
        return "a string"
    if isinstance(t, mi.LiteralType):
        return "one of " + ", ".join(f'"{v}"' for v in t.values)
    if isinstance(t, mi.StructType):
        return "a table"
    if isinstance(t, (mi.VarTupleType, mi.ListType)):
        item = _unwrap(t.item_type)
        if isinstance(item, mi.StructType):
            return "an array of tables"
        return "an array of " + _PLURALS.get(type(item), "values")
    return "a different type"


_PLURALS: dict[type[mi.Type], str] = {
    mi.StrType: "strings",
    mi.IntType: "integers",
    mi.FloatType: "numbers",
    mi.BoolType: "booleans",
}


def _describe_value(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {_toml_repr(value)}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {_toml_repr(value)}"
    if isinstance(value, str):
        return f"string {_toml_repr(value)}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"{type(value).__name__} {value}"


def _toml_repr(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return msgspec.json.encode(text).decode()
    return str(value)


# ----------------------------------------------------------------------------------------------
# Checks across fields, path resolution, api keys
# ----------------------------------------------------------------------------------------------


def _finish(
    config: Config,
    document: dict[str, Any],
    ctx: _Context,
    base_dir: Path | None,
    env: Mapping[str, str],
) -> Config:
    cwd = Path.cwd()
    file_base = cwd if base_dir is None else base_dir

    def base_for(path: KeyPath) -> Path:
        return cwd if ctx.from_override(path) else file_base

    servers: list[ServerConfig] = []
    seen: dict[str, int] = {}
    for i, server in enumerate(config.servers):
        here: KeyPath = ("servers", i)
        if server.name in seen:
            first = seen[server.name]
            line = ctx.lines.get(("servers", first, "name"))
            where = f"servers[{first}]" + (f", line {line}" if line else "")
            raise ctx.error(
                (*here, "name"),
                f"duplicate server name {_toml_repr(server.name)} (also used by {where})",
            )
        seen[server.name] = i
        servers.append(_finish_server(server, here, ctx, base_for, env))

    prompts = config.prompts
    for j, suite in enumerate(prompts.suites):
        if suite not in BUILTIN_SUITES:
            hint = _suggest(suite, BUILTIN_SUITES, list_all=False)
            choices = ", ".join(f'"{s}"' for s in BUILTIN_SUITES)
            raise ctx.error(
                ("prompts", "suites", j),
                f"unknown prompt suite {_toml_repr(suite)}: built-in suites are {choices}{hint}",
            )
    files_base = base_for(("prompts", "files"))
    prompts = msgspec.structs.replace(
        prompts, files=tuple(_resolve(f, files_base) for f in prompts.files)
    )
    models = config.models
    if models.launch.threads == 0:
        raise ctx.error(("models", "launch", "threads"),
                        "out of range: must be ≥ 1, or -1 for llama-server's default, got 0")
    dirs_base = base_for(("models", "dirs"))
    models = msgspec.structs.replace(
        models, dirs=tuple(_resolve(d, dirs_base) for d in models.dirs))
    for j, task_set in enumerate(config.quality.tasks):
        if task_set not in TASK_SETS and not task_set.lower().endswith(".jsonl"):
            hint = _suggest(task_set, TASK_SETS, list_all=False)
            names = " or ".join(_toml_repr(t) for t in TASK_SETS)
            raise ctx.error(("quality", "tasks", j),
                            f"unknown task set {_toml_repr(task_set)}: expected {names}, or a "
                            f".jsonl file of math questions{hint}")
    tasks_base = base_for(("quality", "tasks"))
    quality = msgspec.structs.replace(config.quality, tasks=tuple(
        t if t in TASK_SETS else _resolve(t, tasks_base) for t in config.quality.tasks))
    return msgspec.structs.replace(config, servers=tuple(servers), prompts=prompts,
                                   models=models, quality=quality)


def _finish_server(
    server: ServerConfig,
    here: KeyPath,
    ctx: _Context,
    base_for: Callable[[KeyPath], Path],
    env: Mapping[str, str],
) -> ServerConfig:
    label = f"server {_toml_repr(server.name)}"
    if server.url is not None and server.model is not None:
        raise ctx.error(
            (*here, "model"),
            "both `url` and `model` given: set `url` to attach to a running llama-server "
            "or `model` to launch one, not both",
        )
    if server.url is None and server.model is None:
        raise ctx.error(
            here,
            f"{label} needs `url` (attach to a running llama-server) "
            "or `model` (a GGUF file to launch)",
        )
    if server.launch is not None and server.model is None:
        raise ctx.error(
            (*here, "launch"),
            "`launch` applies only to a managed server (one with `model`), "
            "not to one attached by `url`",
        )
    if server.launch is not None and server.launch.threads == 0:
        raise ctx.error(
            (*here, "launch", "threads"),
            "out of range: must be ≥ 1, or -1 for llama-server's default, got 0",
        )
    if server.api_key is not None and server.api_key_env is not None:
        raise ctx.error(
            (*here, "api_key_env"),
            "both `api_key` and `api_key_env` given: set one of them",
        )
    for key in ("url", "node_exporter_url", "dcgm_exporter_url"):
        value = getattr(server, key)
        if value is not None and (problem := url_problem(value)):
            raise ctx.error((*here, key), f"invalid URL {_toml_repr(value)}: {problem}")

    changes: dict[str, Any] = {}
    if server.url is not None:
        changes["url"] = server.url.rstrip("/")
    if server.model is not None:
        changes["model"] = _resolve(server.model, base_for((*here, "model")))
        if server.launch is None:
            changes["launch"] = LaunchConfig()
    if server.api_key_env is not None:
        key_value = env.get(server.api_key_env)
        if not key_value:
            state = "is empty" if key_value == "" else "is not set"
            raise ctx.error(
                (*here, "api_key_env"),
                f"environment variable `{server.api_key_env}` {state} "
                f"(it should hold the API key of {label})",
            )
        changes["api_key"] = key_value
    return msgspec.structs.replace(server, **changes) if changes else server


def _resolve(path: str, base: Path) -> str:
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else base / p)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as used, for the results file and the history, with secrets masked: API keys,
    passwords in URLs (`core.secrets.mask_url`) and the secret-bearing launch flags
    (`core.secrets.mask_args`)."""
    d: dict[str, Any] = msgspec.to_builtins(cfg)
    launches = [d["models"]["launch"]]
    for s in d.get("servers", []):
        if s.get("api_key"):
            s["api_key"] = MASK
        for field in ("url", "node_exporter_url", "dcgm_exporter_url"):
            if s.get(field):
                s[field] = mask_url(s[field])
        if s.get("launch"):
            launches.append(s["launch"])
    for lc in launches:
        lc["extra_args"] = mask_args(lc.get("extra_args") or ())
    return d
