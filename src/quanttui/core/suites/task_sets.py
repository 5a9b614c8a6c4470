"""Task sets by name or file, for `--tasks` and `[quality] tasks`.

- "builtin": the built-in suite (`core.suites.tasks.builtin_tasks`);
- "humaneval": HumanEval's 164 problems (`core.suites.humaneval`; runs model-written code);
- a `.jsonl` file of math questions with numeric answers, one object per line:
  `{"id"?, "question" or "prompt", "answer": number, "category"?}`. A "question" is asked as
  `Question: ...\\nAnswer:` (the built-in arithmetic items' form), a "prompt" is sent as written;
  the output is scored with `extract_number` (the last number on its first non-empty line).

Every problem in a file is a `TaskSetError` naming the file and line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from quanttui.core.suites import jsonl
from quanttui.core.suites.humaneval import HumanEvalError, load_humaneval
from quanttui.core.suites.tasks import TaskItem, builtin_tasks, length_class

TASK_SETS = ("builtin", "humaneval")
MATH_CATEGORY = "math"  # a file's own questions (word problems too): not the built-in arithmetic
MATH_N_PREDICT = 24


class TaskSetError(ValueError):
    pass


def _answer(value: Any, where: str) -> str:
    """A JSON number (or a string holding one) as the exact decimal `score` compares with."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TaskSetError(f'{where}: "answer" must be a number, got {json.dumps(value)}')
    try:
        d = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise TaskSetError(f'{where}: "answer" must be a number, got {json.dumps(value)}'
                           ) from None
    if not d.is_finite():
        raise TaskSetError(f'{where}: "answer" must be a finite number, got {json.dumps(value)}')
    return str(d)


def load_math_jsonl(path: Path, limit: int | None = None) -> list[TaskItem]:
    """Math questions with numeric answers from a JSONL file; `limit` keeps the first N."""
    items: list[TaskItem] = []
    seen: dict[str, int] = {}
    for where, lineno, obj in jsonl.objects(path, TaskSetError):
        if limit is not None and len(items) >= limit:
            break
        question, prompt = obj.get("question"), obj.get("prompt")
        if (question is None) == (prompt is None):
            raise TaskSetError(f'{where}: give exactly one of "question" and "prompt"')
        text_in = question if question is not None else prompt
        if not isinstance(text_in, str) or not text_in.strip():
            key = "question" if question is not None else "prompt"
            raise TaskSetError(f'{where}: "{key}" must be a non-empty string')
        if "answer" not in obj:
            raise TaskSetError(f'{where}: missing "answer"')
        answer = _answer(obj["answer"], where)
        category = obj.get("category", MATH_CATEGORY)
        if not isinstance(category, str) or not category.strip():
            raise TaskSetError(f'{where}: "category" must be a non-empty string')
        raw_id = obj.get("id", f"{path.stem}-{lineno}")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id):
            raise TaskSetError(f'{where}: "id" must be a non-empty string or an integer')
        item_id = str(raw_id)
        if item_id in seen:
            raise TaskSetError(f"{where}: id {item_id!r} is also on line {seen[item_id]}")
        seen[item_id] = lineno
        full = f"Question: {text_in.strip()}\nAnswer:" if question is not None else text_in
        items.append(TaskItem(item_id, category.strip(), "number", full, answer,
                              length_class(full), MATH_N_PREDICT))
    if not items:
        raise TaskSetError(f"{path}: no questions in file")
    return items


def load_task_sets(specs: Iterable[str], limit: int | None = None) -> list[TaskItem]:
    """Each spec a name in `TASK_SETS` or a `.jsonl` file; `limit` keeps the first N items of
    each. Item ids must be unique across the sets."""
    items: list[TaskItem] = []
    for spec in specs:
        if spec == "builtin":
            items += builtin_tasks()[:limit]
        elif spec == "humaneval":
            try:
                items += load_humaneval(limit)
            except HumanEvalError as e:
                raise TaskSetError(str(e)) from e
        else:
            path = Path(spec).expanduser()
            if path.suffix.lower() != ".jsonl":
                raise TaskSetError(f"{spec}: not a task set ({', '.join(TASK_SETS)}) nor a "
                                   ".jsonl file of math questions")
            if not path.is_file():
                raise TaskSetError(f"{spec}: no such file")
            items += load_math_jsonl(path, limit)
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise TaskSetError(f"two task items share the id {it.id!r} (the same set or file "
                               "twice?)")
        seen.add(it.id)
    return items
