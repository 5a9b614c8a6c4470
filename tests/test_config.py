"""Configuration: decoding, validation messages (file, key, line, suggestion), discovery,
command-line overrides, api_key_env, path resolution, and fuzzing."""

from __future__ import annotations

import contextlib
import math
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import platformdirs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quanttui.config import (
    BUILTIN_SUITES,
    OVERRIDE_SOURCE,
    Config,
    ConfigError,
    GatesConfig,
    GenerationConfig,
    HardwareConfig,
    LaunchConfig,
    ModelsConfig,
    PromptsConfig,
    RunConfig,
    ServerConfig,
    TimeoutsConfig,
    config_from_dict,
    find_config_file,
    load_config,
    parse_overrides,
)
from quanttui.config_errors import format_key_path, line_for, locate_keys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def write(tmp_path: Path, text: str, name: str = "quanttui.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the ``occurrence``-th line containing ``needle``."""
    seen = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in {path}")


def load_error(path: Path, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    return info.value


# ----------------------------------------------------------------------------------------------
# The example file and the defaults
# ----------------------------------------------------------------------------------------------


def test_example_config_decodes() -> None:
    config = load_config(EXAMPLE, env={})
    assert [s.name for s in config.servers] == ["Q8_0", "Q4_K_M"]
    attached, managed = config.servers
    assert attached.url == "http://127.0.0.1:8080"
    assert not attached.managed
    assert attached.launch is None
    assert managed.managed
    assert managed.model == str(EXAMPLE.parent / "models/gemma-3-270m-it-Q4_K_M.gguf")
    assert managed.launch == LaunchConfig()
    # Everything else in the example is commented out: the defaults.
    assert msgspec.structs.replace(config, servers=()) == Config()


def _defaults_by_section() -> dict[str, dict[str, Any]]:
    sections: dict[str, type[msgspec.Struct]] = {
        "run": RunConfig,
        "generation": GenerationConfig,
        "timeouts": TimeoutsConfig,
        "hardware": HardwareConfig,
        "prompts": PromptsConfig,
        "gates": GatesConfig,
        "servers": ServerConfig,
        "servers.launch": LaunchConfig,
        "models": ModelsConfig,
        "models.launch": LaunchConfig,
    }
    result: dict[str, dict[str, Any]] = {}
    for section, cls in sections.items():
        result[section] = {}
        for field in msgspec.structs.fields(cls):
            if f"{section}.{field.encode_name}" in sections:
                continue  # a sub-table, documented by its header
            if field.default is not msgspec.NODEFAULT:
                result[section][field.encode_name] = field.default
            elif field.default_factory is not msgspec.NODEFAULT:
                result[section][field.encode_name] = field.default_factory()
            else:
                result[section][field.encode_name] = msgspec.NODEFAULT  # required
    return result


def test_example_documents_every_key_with_its_default() -> None:
    """Each setting appears in the example as ``# key = <default>`` under its section."""
    expected = _defaults_by_section()
    documented: dict[tuple[str, str], list[Any]] = {}
    section = ""
    header = re.compile(r"^#?\s*\[\[?([\w.]+)\]\]?\s*$")
    setting = re.compile(r"^#?\s*(\w+)\s*=\s*(.+)$")
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := header.match(line):
            section = m.group(1)
        elif m := setting.match(line):
            try:
                value = tomllib.loads(f"v = {m.group(2)}")["v"]
            except tomllib.TOMLDecodeError:
                continue
            documented.setdefault((section, m.group(1)), []).append(value)
    for section, fields in expected.items():
        for key, default in fields.items():
            assert (section, key) in documented, f"{section}.{key} is not in the example"
            values = documented[(section, key)]
            if default is None or default is msgspec.NODEFAULT:
                continue  # optional / required: the example shows a sample value
            # The first occurrence is the default (a second one may show an example).
            first = values[0]
            if isinstance(default, tuple):
                first = tuple(first)
            assert first == default, f"{section}.{key}: example says {first!r}, code {default!r}"
    unknown = {k for k in documented if k[0] in expected and k[1] not in expected[k[0]]}
    assert not unknown, f"example documents keys that don't exist: {unknown}"


def test_no_file_means_defaults() -> None:
    assert load_config(None) == Config()
    assert Config().prompts.suites == ("quick",)
    assert Config().run.schedule == "simultaneous"
    assert Config().gates.min_decode_ratio is None


def test_structs_are_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.run = RunConfig()  # type: ignore[misc]


def test_full_config_decodes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [run]
        endpoint = "chat"
        schedule = "alternating"
        repetitions = 3
        warmup = 0
        concurrency = 4
        order_seed = -7
        export_dir = "out"
        theme = "quanttui-light"

        [generation]
        n_predict = 64
        temperature = 1          # an integer is fine for a float setting
        seed = -1
        top_k = 0
        top_p = 0.95
        min_p = 0.05
        repeat_penalty = 1.1
        stop = ["\\n\\n", "</s>"]
        cache_prompt = true
        ignore_eos = true

        [timeouts]
        connect = 1
        read = 30.5
        total = 60

        [hardware]
        poll_interval = 0.05

        [prompts]
        suites = ["quick", "long"]
        files = ["p/a.txt", "/abs/b.jsonl", "~/c.txt"]
        inline = ["Hello"]

        [gates]
        min_decode_ratio = 0.9
        min_same_top1 = 1

        [[servers]]
        name = "a"
        url = "https://example.com:8443/llama/"
        api_key = "secret"
        node_exporter_url = "http://h:9100/metrics"
        dcgm_exporter_url = "http://h:9400/metrics"

        [[servers]]
        name = "b"
        model = "models/b.gguf"
        [servers.launch]
        threads = -1
        ctx_size = 0
        parallel = 2
        n_gpu_layers = -2
        extra_args = ["-fa", "on"]
        """,
    )
    config = load_config(path, env={})
    assert config.run == RunConfig(
        endpoint="chat",
        schedule="alternating",
        repetitions=3,
        warmup=0,
        concurrency=4,
        order_seed=-7,
        export_dir="out",
        theme="quanttui-light",
    )
    assert config.generation.temperature == 1.0
    assert isinstance(config.generation.temperature, float)
    assert config.generation.stop == ("\n\n", "</s>")
    assert config.timeouts == TimeoutsConfig(connect=1.0, read=30.5, total=60.0)
    assert config.hardware.poll_interval == 0.05
    assert config.prompts.files == (
        str(tmp_path / "p/a.txt"),
        "/abs/b.jsonl",
        str(Path("~/c.txt").expanduser()),
    )
    assert config.gates == GatesConfig(min_decode_ratio=0.9, min_same_top1=1.0)
    a, b = config.servers
    assert a.url == "https://example.com:8443/llama"  # trailing slash dropped
    assert a.api_key == "secret"
    assert b.model == str(tmp_path / "models/b.gguf")
    assert b.launch == LaunchConfig(
        threads=-1, ctx_size=0, parallel=2, n_gpu_layers=-2, extra_args=("-fa", "on")
    )
    assert config.server("b") is b
    with pytest.raises(KeyError):
        config.server("c")


# ----------------------------------------------------------------------------------------------
# Error messages: file, key path, line, what is wrong, suggestion
# ----------------------------------------------------------------------------------------------


def test_unknown_key_in_second_server_names_file_key_line_and_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [run]
        repetitions = 2

        [[servers]]
        name = "a"
        url = "http://127.0.0.1:8080"

        [[servers]]
        nme = "b"
        url = "http://127.0.0.1:8081"
        """,
    )
    err = load_error(path)
    line = line_of(path, "nme =")
    assert (err.source, err.key, err.line) == (str(path), "servers[1].nme", line)
    assert str(err) == (
        f"{path}:{line}: servers[1].nme: unknown key in [[servers]]; did you mean `name`?"
    )


def test_unknown_section_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, '[run]\nschedule = "sequential"\n\n[genration]\nn_predict = 3\n')
    err = load_error(path)
    assert err.key == "genration"
    assert err.line == 4
    assert "unknown key at the top level; did you mean `generation`?" in str(err)


def test_unknown_key_without_close_match_lists_the_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[timeouts]\nconnect = 1\nzzz = 2\n")
    err = load_error(path)
    assert err.key == "timeouts.zzz"
    assert err.line == 3
    assert err.problem == "unknown key in [timeouts]; valid keys: connect, read, total"


def test_unknown_key_in_dotted_and_inline_forms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        generation.n_predict = 8
        [[servers]]
        name = "m"
        model = "m.gguf"
        launch = { threads = 2, ctxsize = 4096 }
        """,
    )
    err = load_error(path)
    assert err.key == "servers[0].launch.ctxsize"
    assert err.line == line_of(path, "ctxsize")
    assert "did you mean `ctx_size`?" in err.problem


def test_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, '[run]\nendpoint = "chat"\nrepetitions = "3"\n')
    err = load_error(path)
    assert (err.key, err.line) == ("run.repetitions", 3)
    assert err.problem == 'wrong type: expected an integer, got string "3"'
    assert str(err) == f'{path}:3: run.repetitions: wrong type: expected an integer, got string "3"'


@pytest.mark.parametrize(
    ("snippet", "key", "problem"),
    [
        ("[run]\nwarmup = true", "run.warmup", "wrong type: expected an integer, got boolean true"),
        ("[run]\nwarmup = 1.5", "run.warmup", "wrong type: expected an integer, got float 1.5"),
        (
            "[generation]\ncache_prompt = 1",
            "generation.cache_prompt",
            "wrong type: expected a boolean (true or false), got integer 1",
        ),
        (
            '[generation]\ntemperature = "hot"',
            "generation.temperature",
            'wrong type: expected a number, got string "hot"',
        ),
        (
            '[generation]\nstop = "###"',
            "generation.stop",
            'wrong type: expected an array of strings, got string "###"',
        ),
        ("run = 3", "run", "wrong type: expected a table, got integer 3"),
        (
            '[servers]\nname = "a"',
            "servers",
            "wrong type: expected an array of tables, got a table",
        ),
        (
            "[gates]\nmin_same_top1 = [1]",
            "gates.min_same_top1",
            "wrong type: expected a number, got an array",
        ),
        (
            "[run]\nexport_dir = 1979-05-27",
            "run.export_dir",
            "wrong type: expected a string, got date 1979-05-27",
        ),
    ],
)
def test_wrong_types(tmp_path: Path, snippet: str, key: str, problem: str) -> None:
    err = load_error(write(tmp_path, snippet + "\n"))
    assert (err.key, err.problem) == (key, problem)
    # The line of the value, or of the [servers] header for the whole table.
    assert err.line == (1 if key == "servers" else snippet.count("\n") + 1)


def test_wrong_type_inside_a_multiline_array_points_at_the_element(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [generation]
        stop = [
            "a",  # fine
            "b",
            3,
        ]
        """,
    )
    err = load_error(path)
    assert err.key == "generation.stop[2]"
    assert err.line == 5
    assert err.problem == "wrong type: expected a string, got integer 3"


@pytest.mark.parametrize(
    ("snippet", "key", "problem"),
    [
        ("[run]\nrepetitions = 0", "run.repetitions", "out of range: must be ≥ 1, got 0"),
        ("[run]\nwarmup = -1", "run.warmup", "out of range: must be ≥ 0, got -1"),
        (
            "[run]\nconcurrency = 65",
            "run.concurrency",
            "out of range: must be between 1 and 64, got 65",
        ),
        (
            "[generation]\nn_predict = 0",
            "generation.n_predict",
            "out of range: must be between 1 and 32768, got 0",
        ),
        (
            "[generation]\ntop_p = 1.5",
            "generation.top_p",
            "out of range: must be between 0 and 1, got 1.5",
        ),
        (
            "[generation]\nmin_p = -0.1",
            "generation.min_p",
            "out of range: must be between 0 and 1, got -0.1",
        ),
        (
            "[generation]\nrepeat_penalty = 0",
            "generation.repeat_penalty",
            "out of range: must be > 0, got 0",
        ),
        (
            "[generation]\ntemperature = -1",
            "generation.temperature",
            "out of range: must be ≥ 0, got -1",
        ),
        (
            "[generation]\nseed = 4294967296",
            "generation.seed",
            "out of range: must be between -1 and 4294967295, got 4294967296",
        ),
        ("[timeouts]\nread = 0", "timeouts.read", "out of range: must be > 0, got 0"),
        ("[timeouts]\ntotal = -3.5", "timeouts.total", "out of range: must be > 0, got -3.5"),
        ("[timeouts]\nconnect = inf", "timeouts.connect", "must be a finite number, got inf"),
        (
            "[generation]\ntemperature = nan",
            "generation.temperature",
            "must be a finite number, got nan",
        ),
        (
            "[hardware]\npoll_interval = 0.01",
            "hardware.poll_interval",
            "out of range: must be between 0.05 and 60, got 0.01",
        ),
        (
            "[gates]\nmin_decode_ratio = 0",
            "gates.min_decode_ratio",
            "out of range: must be > 0, got 0",
        ),
        (
            "[gates]\nmin_same_top1 = 2",
            "gates.min_same_top1",
            "out of range: must be between 0 and 1, got 2",
        ),
        ('[generation]\nstop = ["x", ""]', "generation.stop[1]", "must not be empty"),
        ('[prompts]\ninline = [""]', "prompts.inline[0]", "must not be empty"),
        ('[run]\ntheme = ""', "run.theme", "must not be empty"),
    ],
)
def test_out_of_range(tmp_path: Path, snippet: str, key: str, problem: str) -> None:
    path = write(tmp_path, snippet + "\n")
    err = load_error(path)
    assert (err.key, err.problem, err.line) == (key, problem, 2)
    assert str(err).startswith(f"{path}:2: {key}: ")


def test_invalid_choice_lists_choices_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, '[run]\n\nschedule = "alternatng"\n')
    err = load_error(path)
    assert (err.key, err.line) == ("run.schedule", 3)
    assert err.problem == (
        'invalid value "alternatng": expected one of "alternating", "sequential", '
        '"simultaneous"; did you mean `alternating`?'
    )


def test_missing_required_name_points_at_the_server_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[servers]]
        name = "a"
        url = "http://h:1"

        [[servers]]
        url = "http://h:2"
        """,
    )
    err = load_error(path)
    assert err.key == "servers[1]"
    assert err.line == line_of(path, "[[servers]]", occurrence=2)
    assert err.problem == "missing required key `name`"


def test_too_many_servers(tmp_path: Path) -> None:
    text = "".join(f'[[servers]]\nname = "s{i}"\nurl = "http://h:{i + 1}"\n' for i in range(17))
    err = load_error(write(tmp_path, text))
    assert (err.key, err.line) == ("servers", 1)
    assert err.problem == "too many entries: at most 16 allowed, got 17"


def test_duplicate_server_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[servers]]
        name = "q4"
        url = "http://h:1"

        [[servers]]
        name = "q4"
        model = "q4.gguf"
        """,
    )
    err = load_error(path)
    assert err.key == "servers[1].name"
    assert err.line == 6
    assert err.problem == 'duplicate server name "q4" (also used by servers[0], line 2)'


def test_both_url_and_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[servers]]
        name = "x"
        url = "http://h:1"
        model = "x.gguf"
        """,
    )
    err = load_error(path)
    assert (err.key, err.line) == ("servers[0].model", 4)
    assert err.problem.startswith("both `url` and `model` given")


def test_neither_url_nor_model(tmp_path: Path) -> None:
    path = write(tmp_path, '[[servers]]\nname = "x"\n')
    err = load_error(path)
    assert (err.key, err.line) == ("servers[0]", 1)
    assert err.problem.startswith('server "x" needs `url`')


def test_launch_on_an_attached_server(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [[servers]]
        name = "x"
        url = "http://h:1"
        [servers.launch]
        threads = 4
        """,
    )
    err = load_error(path)
    assert (err.key, err.line) == ("servers[0].launch", 4)
    assert "only to a managed server" in err.problem


def test_zero_threads(tmp_path: Path) -> None:
    path = write(tmp_path, '[[servers]]\nname = "x"\nmodel = "x.gguf"\nlaunch.threads = 0\n')
    err = load_error(path)
    assert (err.key, err.line) == ("servers[0].launch.threads", 4)
    assert "or -1" in err.problem


def test_both_api_key_and_api_key_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[servers]]\nname = "x"\nurl = "http://h:1"\napi_key = "k"\napi_key_env = "K"\n',
    )
    err = load_error(path)
    assert (err.key, err.line) == ("servers[0].api_key_env", 5)
    assert err.problem.startswith("both `api_key` and `api_key_env` given")


@pytest.mark.parametrize(
    ("key", "url", "problem"),
    [
        ("url", "127.0.0.1:8080", "expected an http:// or https:// URL"),
        ("url", "ftp://h/x", "expected an http:// or https:// URL"),
        ("url", "http://", "no host name"),
        ("url", "http://h:99999", "Port out of range 0-65535"),
        ("node_exporter_url", "h:9100/metrics", "expected an http:// or https:// URL"),
        ("dcgm_exporter_url", "http:///metrics", "no host name"),
    ],
)
def test_invalid_urls(tmp_path: Path, key: str, url: str, problem: str) -> None:
    extra = "" if key == "url" else 'url = "http://h:1"\n'
    path = write(tmp_path, f'[[servers]]\nname = "x"\n{extra}{key} = "{url}"\n')
    err = load_error(path)
    assert err.key == f"servers[0].{key}"
    assert err.line == line_of(path, f"{key} =")
    assert err.problem == f'invalid URL "{url}": {problem}'


def test_unknown_suite_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, '[prompts]\nsuites = [\n  "quick",\n  "taks",\n]\n')
    err = load_error(path)
    assert (err.key, err.line) == ("prompts.suites[1]", 4)
    assert err.problem == (
        'unknown prompt suite "taks": built-in suites are "quick", "tasks", "long"; '
        "did you mean `tasks`?"
    )
    assert BUILTIN_SUITES == ("quick", "tasks", "long")


def test_toml_syntax_error_carries_tomllibs_message_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[run]\nschedule = "alternating"\nrepetitions = = 2\n')
    err = load_error(path)
    assert err.line == 3
    assert err.key is None
    assert str(err).startswith(f"{path}:3: invalid TOML: ")
    assert "line 3" in str(err)


def test_duplicate_key_is_a_toml_error(tmp_path: Path) -> None:
    err = load_error(write(tmp_path, "[run]\nwarmup = 1\nwarmup = 2\n"))
    assert "invalid TOML" in err.problem


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[run]\ntheme = "\xff"\n')
    err = load_error(path)
    assert err.line == 2
    assert "not valid UTF-8" in str(err)


def test_missing_explicit_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        find_config_file(missing)
    assert str(info.value) == f"{missing}: config file not found"
    assert load_error(missing).problem == "config file not found"


def test_explicit_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a file"):
        find_config_file(tmp_path)
    assert "not a file" in load_error(tmp_path).problem


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    user = tmp_path / "user-config" / "quanttui"
    monkeypatch.setattr(platformdirs, "user_config_dir", lambda appname=None, *a, **k: str(user))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return user


def test_discovery_order(tmp_path: Path, user_dir: Path) -> None:
    work = Path.cwd()
    assert find_config_file(None) is None

    user_dir.mkdir(parents=True)
    user_file = user_dir / "config.toml"
    user_file.write_text("[run]\nrepetitions = 2\n")
    assert find_config_file(None) == user_file

    local = work / "quanttui.toml"
    local.write_text("[run]\nrepetitions = 3\n")
    assert find_config_file(None) == local

    explicit = tmp_path / "elsewhere.toml"
    explicit.write_text("[run]\nrepetitions = 4\n")
    assert find_config_file(explicit) == explicit

    reps = [load_config(find_config_file(p)).run.repetitions for p in (explicit, None)]
    assert reps == [4, 3]
    local.unlink()
    assert load_config(find_config_file(None)).run.repetitions == 2


def test_a_directory_named_like_the_config_is_skipped(user_dir: Path) -> None:
    (Path.cwd() / "quanttui.toml").mkdir()
    assert find_config_file(None) is None


# ----------------------------------------------------------------------------------------------
# Overrides
# ----------------------------------------------------------------------------------------------


def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [run]
        schedule = "sequential"
        [generation]
        n_predict = 256
        [[servers]]
        name = "a"
        url = "http://h:1"
        """,
    )
    config = load_config(
        path,
        {
            "run.schedule": "alternating",
            "generation.n_predict": 64,
            "generation.stop": ["\n"],
            "timeouts.read": 10,
            "servers[0].url": "http://h:2/",
            "gates.min_decode_ratio": 0.8,
        },
    )
    assert config.run.schedule == "alternating"
    assert config.generation.n_predict == 64
    assert config.generation.stop == ("\n",)
    assert config.timeouts.read == 10.0
    assert config.servers[0].url == "http://h:2"
    assert config.gates.min_decode_ratio == 0.8


def test_string_overrides_are_read_by_the_settings_type(tmp_path: Path) -> None:
    overrides = parse_overrides(
        [
            "generation.n_predict=64",
            "generation.temperature = 0.7",
            "generation.ignore_eos=true",
            'generation.stop=["###", "\\n"]',
            "run.schedule=alternating",
            "run.theme=1234",  # a string setting stays a string
            "servers.0.name=cli",
            "servers[0].url=http://127.0.0.1:9000",
            "servers[1].name=m",
            "servers[1].model=x.gguf",
            'prompts.inline=["hi"]',
        ]
    )
    assert overrides["generation.n_predict"] == "64"
    config = load_config(None, overrides)
    assert config.generation.n_predict == 64
    assert config.generation.temperature == 0.7
    assert config.generation.ignore_eos is True
    assert config.generation.stop == ("###", "\n")
    assert config.run.schedule == "alternating"
    assert config.run.theme == "1234"
    assert [s.name for s in config.servers] == ["cli", "m"]
    assert config.servers[0].url == "http://127.0.0.1:9000"
    # Paths from the command line are relative to the current directory, not the file's.
    assert config.servers[1].model == str(Path.cwd() / "x.gguf")
    assert config.prompts.inline == ("hi",)


def test_override_paths_are_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    path = write(
        conf_dir, '[prompts]\nfiles = ["a.txt"]\n[[servers]]\nname = "m"\nmodel = "m.gguf"\n'
    )
    config = load_config(path)
    assert config.prompts.files == (str(conf_dir / "a.txt"),)
    assert config.servers[0].model == str(conf_dir / "m.gguf")
    config = load_config(path, {"prompts.files": ["b.txt"], "servers[0].model": "n.gguf"})
    assert config.prompts.files == (str(work / "b.txt"),)
    assert config.servers[0].model == str(work / "n.gguf")


def test_invalid_override_value_is_reported_as_an_override(tmp_path: Path) -> None:
    path = write(tmp_path, "[generation]\nn_predict = 256\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {"generation.n_predict": "0"})
    err = info.value
    assert (err.source, err.key, err.line) == (OVERRIDE_SOURCE, "generation.n_predict", None)
    assert str(err) == (
        "command-line override: generation.n_predict: out of range: must be between 1 and 32768, "
        "got 0"
    )


def test_override_of_wrong_type_and_enum(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"run.repetitions": "three"})
    assert info.value.problem == 'wrong type: expected an integer, got string "three"'
    with pytest.raises(ConfigError) as info:
        load_config(None, {"run.schedule": "sequental"})
    assert info.value.source == OVERRIDE_SOURCE
    assert "did you mean `sequential`?" in info.value.problem


def test_unknown_override_key_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"run.schedul": "alternating"})
    err = info.value
    assert (err.source, err.key) == (OVERRIDE_SOURCE, "run.schedul")
    assert err.problem == "unknown key in [run]; did you mean `schedule`?"


def test_file_errors_still_point_at_the_file_with_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[run]\nrepetitions = 0\n")
    err = load_error(path, overrides={"run.warmup": 2})
    assert (err.source, err.key, err.line) == (str(path), "run.repetitions", 2)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("servers[3].url", "no such entry (there are 0; use index 0 to add one)"),
        ("run..schedule", "malformed key"),
        ("", "malformed key"),
        ("run.schedule.x", "cannot set a key inside string"),
    ],
)
def test_bad_override_keys(key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"run.schedule": "sequential", key: "x"})
    assert info.value.source == OVERRIDE_SOURCE
    assert problem in info.value.problem


def test_parse_overrides_needs_an_equals_sign() -> None:
    assert parse_overrides(["a.b=1", "a.b=2", "c= x = y "]) == {"a.b": "2", "c": "x = y"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_overrides(["run.schedule"])


def test_overrides_do_not_mutate_the_input() -> None:
    data: dict[str, Any] = {"run": {"warmup": 0}, "servers": [{"name": "a", "url": "http://h"}]}
    config_from_dict(data, overrides={"run.warmup": 3, "servers[0].name": "b"}, env={})
    assert data == {"run": {"warmup": 0}, "servers": [{"name": "a", "url": "http://h"}]}


# ----------------------------------------------------------------------------------------------
# api_key_env
# ----------------------------------------------------------------------------------------------

SERVER_WITH_ENV = """
[[servers]]
name = "remote"
url = "http://gpu-box:8080"
api_key_env = "QT_TEST_KEY"
"""


def test_api_key_env_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, SERVER_WITH_ENV)
    monkeypatch.setenv("QT_TEST_KEY", "s3cret")
    server = load_config(path).servers[0]
    assert (server.api_key, server.api_key_env) == ("s3cret", "QT_TEST_KEY")
    assert load_config(path, env={"QT_TEST_KEY": "other"}).servers[0].api_key == "other"


@pytest.mark.parametrize(("env", "state"), [({}, "is not set"), ({"QT_TEST_KEY": ""}, "is empty")])
def test_missing_api_key_env_names_server_and_variable(
    tmp_path: Path, env: dict[str, str], state: str
) -> None:
    path = write(tmp_path, SERVER_WITH_ENV)
    err = load_error(path, env=env)
    assert (err.key, err.line) == ("servers[0].api_key_env", 4)
    assert err.problem == (
        f"environment variable `QT_TEST_KEY` {state} "
        '(it should hold the API key of server "remote")'
    )


# ----------------------------------------------------------------------------------------------
# The locator
# ----------------------------------------------------------------------------------------------


def test_locator_follows_headers_arrays_dotted_keys_and_skips_strings() -> None:
    text = textwrap.dedent(
        '''\
        title = """
        [not.a.header]
        fake = 1
        """
        [run]   # comment [x]
        schedule = "a#b[c]"
        "quoted key" = 'lit'
        [[servers]]
        name = "a"
        [servers.launch]
        threads = 1
        [[servers]]
        name = "b"
        launch.extra_args = [
          "x",
          "y",
        ]
        [ generation ]
        stop = ["]", "=", '[']
        servers2 = [ { name = "c" }, { name = "d", url = "u" } ]
        '''
    )
    lines = locate_keys(text)
    assert lines[("title",)] == 1
    assert ("not", "a", "header") not in lines
    assert ("fake",) not in lines
    assert lines[("run",)] == 5
    assert lines[("run", "schedule")] == 6
    assert lines[("run", "quoted key")] == 7
    assert lines[("servers",)] == 8
    assert lines[("servers", 0)] == 8
    assert lines[("servers", 0, "name")] == 9
    assert lines[("servers", 0, "launch")] == 10
    assert lines[("servers", 0, "launch", "threads")] == 11
    assert lines[("servers", 1)] == 12
    assert lines[("servers", 1, "name")] == 13
    assert lines[("servers", 1, "launch", "extra_args")] == 14
    assert lines[("servers", 1, "launch", "extra_args", 1)] == 16
    assert lines[("generation", "stop", 2)] == 19
    assert lines[("generation", "servers2", 1, "url")] == 20
    assert line_for(lines, ("servers", 1, "model")) == 12
    assert line_for(lines, ("nothing", "here")) is None


def test_format_key_path_quotes_odd_keys() -> None:
    assert format_key_path(("servers", 1, "name")) == "servers[1].name"
    assert format_key_path(("run", "my key")) == 'run."my key"'
    assert format_key_path(()) == ""


# ----------------------------------------------------------------------------------------------
# Fuzzing: anything TOML-shaped either decodes or raises ConfigError
# ----------------------------------------------------------------------------------------------

_KEYS = sorted(
    {key for fields in _defaults_by_section().values() for key in fields}
    | {"run", "generation", "timeouts", "hardware", "prompts", "gates", "servers", "launch"}
)
_VALUES = [*BUILTIN_SUITES, "completion", "chat", "alternating", "http://127.0.0.1:1", "m.gguf"]

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=100),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(_VALUES),
)
keys = st.one_of(st.sampled_from(_KEYS), st.text(max_size=6))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)
server = st.dictionaries(st.sampled_from([*_KEYS, "nme"]), values, max_size=6)
documents = st.dictionaries(
    keys,
    st.one_of(values, st.dictionaries(keys, values, max_size=6), st.lists(server, max_size=3)),
    max_size=6,
)


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def _to_toml(document: dict[str, Any]) -> str:
    """Top-level scalars inline, tables as [headers], arrays of tables as [[headers]]."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in document.items():
        name = _toml_string(key)
        if isinstance(value, dict):
            tables.append(f"[{name}]")
            tables.extend(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items())
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for element in value:
                tables.append(f"[[{name}]]")
                tables.extend(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in element.items())
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join([*lines, *tables]) + "\n"


@settings(max_examples=300, deadline=None)
@given(documents)
def test_fuzz_dicts_decode_or_raise_config_error(document: dict[str, Any]) -> None:
    try:
        config = config_from_dict(document, env={})
    except ConfigError as err:
        assert str(err)
    else:
        assert isinstance(config, Config)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_fuzz_toml_files_decode_or_raise_config_error(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    path = tmp_path / "fuzz.toml"
    text = _to_toml(document)
    path.write_text(text, encoding="utf-8")
    try:
        config = load_config(path, env={})
    except ConfigError as err:
        assert err.source == str(path)
        assert err.line is None or 1 <= err.line <= text.count("\n") + 1
        assert str(err).startswith(str(path))
    else:
        assert isinstance(config, Config)


_FRAGMENTS = [
    "[run]",
    "[[servers]]",
    "[servers.launch]",
    "[generation]",
    'name = "a"',
    "nme = 1",
    'url = "http://h:1"',
    'model = "m.gguf"',
    "repetitions = 0",
    "stop = [",
    '"x",',
    "]",
    "{",
    "}",
    'a = """',
    '"""',
    "'''",
    "#",
    "= =",
    "launch = { threads = 2 }",
    "[",
    "[[",
    "top_p = nan",
    'schedule = "x"',
    "x.y.z = 1",
    '"k\\"q" = 2',
    "\\",
    "\t",
    "",
]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=12)), max_size=12))
def test_fuzz_text_never_raises_anything_but_config_error(tmp_path: Path, parts: list[str]) -> None:
    text = "\n".join(parts)
    locate_keys(text)  # never raises, whatever the text
    path = tmp_path / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with contextlib.suppress(ConfigError):
        load_config(path, {"run.warmup": "2"}, env={})


override_keys = st.one_of(
    st.text(max_size=15),
    st.lists(
        st.one_of(st.sampled_from(_KEYS), st.sampled_from(["[0]", "[1]", "0", ""])), max_size=4
    ).map(".".join),
)


@settings(max_examples=300, deadline=None)
@given(documents, st.dictionaries(override_keys, st.one_of(values, st.text(max_size=10))))
def test_fuzz_overrides_decode_or_raise_config_error(
    document: dict[str, Any], overrides: dict[str, Any]
) -> None:
    try:
        config_from_dict(document, overrides=overrides, env={})
    except ConfigError as err:
        assert str(err)


@settings(max_examples=200, deadline=None)
@given(documents)
def test_fuzz_locator_finds_every_written_key(document: dict[str, Any]) -> None:
    text = _to_toml(document)
    lines = text.split("\n")
    parsed = tomllib.loads(text)
    located = locate_keys(text)

    def check(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                here = (*path, key)
                assert here in located, here
                assert _toml_string(key) in lines[located[here] - 1]
                check(value, here)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                assert (*path, i) in located
                check(value, (*path, i))

    check(parsed, ())
