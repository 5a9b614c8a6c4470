"""MMLU-format loaders on files written here; bad files name the line."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from quanttui.core.suites.mmlu import MMLUFormatError, load_mmlu, load_mmlu_hub, mmlu_prompt
from quanttui.core.suites.tasks import score


def write(p: Path, text: str) -> Path:
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_in_the_original_layout(tmp_path: Path) -> None:
    f = write(tmp_path / "high_school_physics_test.csv",
              'What is 2+2?,3,4,5,6,B\n'
              '"A question, with a comma\nand a line break?",yes,no,maybe,never,a\n')
    items = load_mmlu([f])
    assert [i.answer for i in items] == ["B", "A"]
    assert items[0].category == "mmlu/high_school_physics" and items[0].kind == "choice"
    assert items[0].prompt.startswith(
        "The following are multiple choice questions (with answers) about high school physics.")
    assert "\nB. 4\n" in items[0].prompt and items[0].prompt.endswith("Answer:")
    assert "and a line break?" in items[1].prompt
    assert score(items[0], " B") and not score(items[0], " C")


def test_csv_header_is_skipped(tmp_path: Path) -> None:
    f = write(tmp_path / "x.csv", "question,A,B,C,D,answer\nQ?,a,b,c,d,D\n")
    (item,) = load_mmlu([f])
    assert item.answer == "D" and item.category == "mmlu/x"


def test_jsonl_both_layouts_and_limit(tmp_path: Path) -> None:
    rows = [{"question": "Q1?", "choices": ["a", "b", "c", "d"], "answer": 2, "subject": "law"},
            {"question": "Q2?", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "b"},
            {"question": "Q3?", "choices": ["a", "b"], "answer": "1"}]
    f = write(tmp_path / "mine.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    items = load_mmlu([f])
    assert [(i.category, i.answer) for i in items] == [("mmlu/law", "C"), ("mmlu/mine", "B"),
                                                        ("mmlu/mine", "B")]
    assert len(items[2].choices) == 2
    assert len(load_mmlu([f], limit=1)) == 1


def test_folder(tmp_path: Path) -> None:
    write(tmp_path / "a_test.csv", "Q?,a,b,c,d,A\n")
    write(tmp_path / "b.jsonl", json.dumps({"question": "Q", "choices": ["a", "b"],
                                            "answer": 0}) + "\n")
    assert {i.category for i in load_mmlu([tmp_path])} == {"mmlu/a", "mmlu/b"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MMLUFormatError, match=r"no \.csv or \.jsonl"):
        load_mmlu([empty])


@pytest.mark.parametrize(("name", "text", "where", "what"), [
    ("bad_cols.csv", "Q1?,a,b,c,d,A\nQ2?,a,b,c,A\n", ":2:", "expected 6 columns"),
    ("bad_answer.csv", "Q1?,a,b,c,d,A\n\nQ2?,a,b,c,d,E\n", ":3:", "answer must be one of"),
    ("multiline.csv", '"Q1\nspans\nlines",a,b,c,d,A\nQ2?,a,,c,d,A\n', ":4:", "option is empty"),
    ("empty_q.csv", " ,a,b,c,d,A\n", ":1:", "question is empty"),
    ("bad.jsonl", '{"question": "Q", "choices": ["a","b"], "answer": 0}\n{oops\n', ":2:",
     "not JSON"),
    ("noans.jsonl", '\n{"question": "Q", "choices": ["a","b"]}\n', ":2:", 'missing "answer"'),
    ("range.jsonl", '{"question": "Q", "choices": ["a","b"], "answer": 5}\n', ":1:",
     "out of range"),
    ("nochoices.jsonl", '{"question": "Q", "answer": 0}\n', ":1:", "choices"),
])
def test_bad_files_name_the_line(tmp_path: Path, name: str, text: str, where: str,
                                 what: str) -> None:
    f = write(tmp_path / name, text)
    with pytest.raises(MMLUFormatError) as e:
        load_mmlu([f])
    assert str(e.value).startswith(f"{f}{where}") and what in str(e.value)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(MMLUFormatError, match="no questions"):
        load_mmlu([write(tmp_path / "e.csv", "\n")])
    with pytest.raises(MMLUFormatError, match="no such file"):
        load_mmlu([tmp_path / "nope.csv"])


def test_hub_without_datasets_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails
    with pytest.raises(MMLUFormatError, match="pip install datasets"):
        load_mmlu_hub(["anatomy"])


def test_hub_path_with_a_stand_in_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(name: str, subject: str, split: str) -> list[dict[str, object]]:
        calls.append((name, subject, split))
        if subject == "missing":
            raise FileNotFoundError("no such config")
        return [{"question": f"Q{i}?", "subject": subject, "choices": ["a", "b", "c", "d"],
                 "answer": i % 4} for i in range(5)]

    monkeypatch.setitem(sys.modules, "datasets",
                        types.SimpleNamespace(load_dataset=load_dataset))
    items = load_mmlu_hub(["anatomy"], limit=3)
    assert calls == [("cais/mmlu", "anatomy", "test")]
    assert [i.answer for i in items] == ["A", "B", "C"] and items[0].category == "mmlu/anatomy"
    with pytest.raises(MMLUFormatError, match=r"missing.*no such config"):
        load_mmlu_hub(["missing"])


def test_prompt_without_subject() -> None:
    p = mmlu_prompt("Q?", ["a", "b"], None)
    assert p.startswith("The following are multiple choice questions (with answers).\n\nQ?")
