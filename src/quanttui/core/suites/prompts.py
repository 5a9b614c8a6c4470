"""Prompts: the built-in suites, and prompts from files and config.

The demo model is a small base model, so built-in prompts are completion-style openings that any
base or instruct model continues sensibly. Each prompt has a stable id (used to pair the same
prompt across servers and across runs) and a category, because quantization hurts some kinds
of text more than others.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    text: str
    category: str = "chat"
    suite: str = "inline"


# Categories by the built-in tasks' names (core.suites.tasks), so the two read alike by category
_QUICK = [
    ("facts", "The capital of France is Paris. The capital of Japan is"),
    ("arithmetic", "Question: What is 17 + 25?\nAnswer:"),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("chat", "Once upon a time, in a small village by the sea, there lived"),
    ("facts", "Water boils at a temperature of"),
    ("chat", "Here are three tips for a good night's sleep:\n1."),
]

_LONG_TEXT = (
    "The history of computing is a story of abstraction. Early machines were programmed by "
    "rewiring panels; later, stored programs let the same hardware run many tasks. Assembly "
    "languages gave names to instructions, and compilers turned readable formulas into machine "
    "code. Operating systems hid the details of disks and terminals behind files and processes. "
    "Networks joined machines into systems that no single person could hold in their head, and "
    "the web put a document viewer on every desk. Each layer made the one below it invisible "
    "to most people, and each brought its own failures: leaks in the abstraction, where the "
    "hidden details surfaced at the worst moment. Numerical computing followed the same path. "
    "Floating-point arithmetic approximates real numbers with a fixed number of bits, and the "
    "choice of how many bits to spend is a trade between range, precision, memory and speed. "
    "Neural networks turned out to tolerate far coarser numbers than physics simulations: "
    "weights stored in eight, four or even two bits still produce fluent text, although the "
    "errors add up in ways that are hard to predict from averages alone. "
)

_LONG = [
    ("chat", _LONG_TEXT + "\n\nIn one paragraph, the main lesson of this history is that"),
    ("facts", _LONG_TEXT * 2 + "\n\nThe three layers of abstraction mentioned above are"),
    ("code", "# A small library for parsing configuration files\n" + "\n".join(
        f"def parse_{name}(text):\n    \"\"\"Parse a {name} value.\"\"\"\n"
        f"    return {conv}(text.strip())\n"
        for name, conv in [("int", "int"), ("float", "float"), ("name", "str"),
                           ("size", "int"), ("ratio", "float")]
    ) + "\ndef parse_bool(text):\n"),
]

BUILTIN: dict[str, list[tuple[str, str]]] = {"quick": _QUICK, "tasks": [], "long": _LONG}
SUITE_NAMES: tuple[str, ...] = tuple(BUILTIN)  # the built-in suites, by the name users give


def builtin_suite(name: str) -> list[Prompt]:
    if name == "tasks":
        # The prompts of the task suite that quality scoring uses: one list of items, their
        # checkable answers stay with it in core.tasks.
        from quanttui.core.suites.tasks import builtin_tasks

        return [Prompt(id=t.id, text=t.prompt, category=t.category, suite="tasks")
                for t in builtin_tasks()]
    try:
        items = BUILTIN[name]
    except KeyError:
        raise ValueError(
            f"unknown prompt suite {name!r}; built-in suites: {', '.join(BUILTIN)}"
        ) from None
    return [Prompt(id=f"{name}-{i + 1}", text=t, category=c, suite=name)
            for i, (c, t) in enumerate(items)]


class PromptFileError(Exception):
    pass


def load_prompt_file(path: Path) -> list[Prompt]:
    """A `.jsonl` file of {"prompt": ..., "category"?: ..., "id"?: ...} lines, or any other
    text file as one prompt."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PromptFileError(f"{path}: cannot read prompt file: {e}") from e
    stem = path.stem
    if path.suffix.lower() != ".jsonl":
        if not text.strip():
            raise PromptFileError(f"{path}: prompt file is empty")
        return [Prompt(id=stem, text=text, suite=str(path))]
    out: list[Prompt] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise PromptFileError(f"{path}:{lineno}: not JSON: {e.msg}") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
            raise PromptFileError(f'{path}:{lineno}: expected an object with a "prompt" string')
        out.append(Prompt(id=str(obj.get("id", f"{stem}-{lineno}")), text=obj["prompt"],
                          category=str(obj.get("category", "chat")), suite=str(path)))
    if not out:
        raise PromptFileError(f"{path}: no prompts in file")
    return out


def collect(suites: Iterable[str] = (), files: Iterable[Path] = (),
            inline: Sequence[str] = ()) -> list[Prompt]:
    prompts: list[Prompt] = []
    for s in suites:
        prompts += builtin_suite(s)
    for f in files:
        prompts += load_prompt_file(f)
    prompts += [Prompt(id=f"inline-{i + 1}", text=t) for i, t in enumerate(inline)]
    seen: set[str] = set()
    for p in prompts:
        if p.id in seen:
            raise ValueError(f"two prompts share the id {p.id!r}")
        seen.add(p.id)
    return prompts
