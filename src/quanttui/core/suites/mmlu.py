"""MMLU-format multiple-choice questions from files the user points at, or from the Hugging Face
hub through the optional `datasets` package, as task items.

File layouts:
- CSV as the original MMLU release: no header, one question per row `question,A,B,C,D,answer`
  with the answer a letter; the subject comes from the file name (`anatomy_test.csv` →
  `anatomy`). A header row `question,A,B,C,D,answer` is skipped when present.
- JSONL: one object per line, `{"question", "choices": [...], "answer", "subject"?}` as
  `cais/mmlu` has it (answer an index 0-3 or a letter), or `{"question", "A", "B", "C", "D",
  "answer"}`.
- A folder: every `*.csv` and `*.jsonl` in it.

Every problem is an `MMLUFormatError` naming the file and line. The prompt is the usual
zero-shot MMLU prompt; the model answers with a letter.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from quanttui.core.suites import jsonl
from quanttui.core.suites.tasks import LETTERS, TaskItem, length_class

CATEGORY_PREFIX = "mmlu/"
_HEADER = ["question", "a", "b", "c", "d", "answer"]


class MMLUFormatError(ValueError):
    pass


def mmlu_prompt(question: str, choices: Sequence[str], subject: str | None) -> str:
    topic = f" about {subject.replace('_', ' ')}" if subject else ""
    body = "\n".join([question.strip()] + [f"{LETTERS[i]}. {c.strip()}"
                                           for i, c in enumerate(choices)])
    return (f"The following are multiple choice questions (with answers){topic}.\n\n"
            f"{body}\nAnswer:")


def make_item(question: str, choices: Sequence[str], answer: str, subject: str | None,
              item_id: str) -> TaskItem:
    prompt = mmlu_prompt(question, choices, subject)
    return TaskItem(item_id, CATEGORY_PREFIX + (subject or "unknown"), "choice", prompt, answer,
                    length_class(prompt), 4, tuple(c.strip() for c in choices))


def _answer_letter(value: Any, n_choices: int, where: str) -> str:
    if isinstance(value, bool):
        raise MMLUFormatError(f"{where}: answer must be a letter or an index, got {value!r}")
    if isinstance(value, int):
        if 0 <= value < n_choices:
            return LETTERS[value]
        raise MMLUFormatError(f"{where}: answer index {value} is out of range 0-{n_choices - 1}")
    if isinstance(value, str):
        v = value.strip().upper()
        if len(v) == 1 and v in LETTERS[:n_choices]:
            return v
        if v.isdigit() and 0 <= int(v) < n_choices:
            return LETTERS[int(v)]
    raise MMLUFormatError(
        f"{where}: answer must be one of {', '.join(LETTERS[:n_choices])} "
        f"(or an index 0-{n_choices - 1}), got {value!r}")


def subject_from_name(path: Path) -> str:
    stem = path.stem
    for suffix in ("_test", "_dev", "_val", "_validation", "_train"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def load_csv(path: Path, subject: str | None = None) -> list[TaskItem]:
    text = jsonl.read_text(path, MMLUFormatError)
    subject = subject or subject_from_name(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    items: list[TaskItem] = []
    line = 1  # the line a row starts on (rows may span lines inside quotes)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise MMLUFormatError(f"{path}:{reader.line_num}: bad CSV: {e}") from e
        start, line = line, reader.line_num + 1
        if not row or all(not c.strip() for c in row):
            continue
        if not items and [c.strip().lower() for c in row] == _HEADER:
            continue
        where = f"{path}:{start}"
        if len(row) != 6:
            raise MMLUFormatError(
                f"{where}: expected 6 columns (question,A,B,C,D,answer), found {len(row)}")
        question, *choices, answer = row
        if not question.strip():
            raise MMLUFormatError(f"{where}: the question is empty")
        if any(not c.strip() for c in choices):
            raise MMLUFormatError(f"{where}: an answer option is empty")
        items.append(make_item(question, choices, _answer_letter(answer, 4, where), subject,
                               f"mmlu-{subject}-{len(items) + 1}"))
    if not items:
        raise MMLUFormatError(f"{path}: no questions in file")
    return items


def load_jsonl(path: Path, subject: str | None = None) -> list[TaskItem]:
    items: list[TaskItem] = []
    default_subject = subject or subject_from_name(path)
    for where, lineno, obj in jsonl.objects(path, MMLUFormatError):
        question = obj.get("question")
        if not isinstance(question, str) or not question.strip():
            raise MMLUFormatError(f'{where}: "question" must be a non-empty string')
        choices = obj.get("choices")
        if choices is None and all(k in obj for k in "ABCD"):
            choices = [obj[k] for k in "ABCD"]
        if (not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS)
                or not all(isinstance(c, str) and c.strip() for c in choices)):
            raise MMLUFormatError(
                f'{where}: expected "choices" (a list of 2-10 non-empty strings) or keys A-D')
        if "answer" not in obj:
            raise MMLUFormatError(f'{where}: missing "answer"')
        answer = _answer_letter(obj["answer"], len(choices), where)
        subj = obj.get("subject") if isinstance(obj.get("subject"), str) and obj["subject"] \
            else default_subject
        items.append(make_item(question, choices, answer, subj, f"mmlu-{subj}-{lineno}"))
    if not items:
        raise MMLUFormatError(f"{path}: no questions in file")
    return items


def load_mmlu(paths: Iterable[Path], limit: int | None = None) -> list[TaskItem]:
    """Files or folders; `limit` keeps the first N questions of each file."""
    items: list[TaskItem] = []
    for p in paths:
        files = sorted([*p.glob("*.csv"), *p.glob("*.jsonl")]) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise MMLUFormatError(f"{p}: no .csv or .jsonl files in this folder")
        for f in files:
            if not f.exists():
                raise MMLUFormatError(f"{f}: no such file")
            loaded = load_jsonl(f) if f.suffix.lower() in (".jsonl", ".json") else load_csv(f)
            items += loaded[:limit] if limit is not None else loaded
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise MMLUFormatError(f"two questions share the id {it.id!r} (same subject in two "
                                  "files?)")
        seen.add(it.id)
    return items


def load_mmlu_hub(subjects: Sequence[str] = ("all",), *, dataset: str = "cais/mmlu",
                  split: str = "test", limit: int | None = None) -> list[TaskItem]:
    """From the Hugging Face hub with the optional `datasets` package (needs network the first
    time; cached afterwards). `limit` keeps the first N questions of each subject."""
    try:
        import datasets  # type: ignore[import-not-found, unused-ignore]
    except ImportError as e:
        raise MMLUFormatError(
            "loading MMLU from the hub needs the `datasets` package (pip install datasets); "
            "or download the CSV files and pass their folder") from e
    items: list[TaskItem] = []
    for subject in subjects:
        try:
            ds = datasets.load_dataset(dataset, subject, split=split)
        except Exception as e:  # network, unknown config, ...: the library's own exceptions
            raise MMLUFormatError(f"{dataset} ({subject}, {split}): {e}") from e
        for i, row in enumerate(ds):
            if limit is not None and i >= limit:
                break
            where = f"{dataset}/{subject}/{split}[{i}]"
            try:
                choices = [str(c) for c in row["choices"]]
                subj = str(row.get("subject") or subject)
                items.append(make_item(str(row["question"]), choices,
                                       _answer_letter(row["answer"], len(choices), where), subj,
                                       f"mmlu-{subj}-{split}-{i}"))
            except (KeyError, TypeError) as e:
                raise MMLUFormatError(f"{where}: unexpected row layout: {e}") from e
    return items
