"""The built-in task suite, answer extraction, and accuracy per category with its uncertainty."""

from __future__ import annotations

import math
from collections import Counter
from decimal import Decimal

import pytest

from quality_toy import ToyLM
from quanttui.core.quality.accuracy import TaskOutcome, accuracy_by, accuracy_diff, run_tasks
from quanttui.core.suites.tasks import (
    TaskItem,
    builtin_tasks,
    extract_choice,
    extract_number,
    score,
)


def test_builtin_suite_covers_every_category_and_length() -> None:
    items = builtin_tasks()
    assert len({i.id for i in items}) == len(items)
    cells = Counter((i.category, i.length) for i in items)
    for cat in ("arithmetic", "facts", "code", "chat"):
        for length in ("short", "medium", "long"):
            assert cells[(cat, length)] >= 1, (cat, length)
    for i in items:
        if i.kind == "open":
            assert i.answer is None
            continue
        assert i.answer is not None
        # The expected answer written out scores as correct, and a wrong one does not.
        assert score(i, f" {i.answer}\n\nQuestion: next") is True, i.id
        assert score(i, " zzz") is False, i.id
        if i.kind == "choice":
            assert len(i.choices) == 4 and f"{i.answer}. " in i.prompt
    lengths = {i.length: len(i.prompt) for i in items if i.category == "arithmetic"}
    assert lengths["short"] < lengths["medium"] < lengths["long"]


def test_number_extraction() -> None:
    assert extract_number(" 12\nQuestion: 3") == Decimal(12)
    assert extract_number("\n 7 + 5 = 12") == Decimal(12)  # the last number on the line
    assert extract_number(" 1,250 apples") == Decimal(1250)
    assert extract_number(" -3.5") == Decimal("-3.5")
    assert extract_number(" none") is None
    item = TaskItem("t", "arithmetic", "number", "", "12")
    assert score(item, " 12.0") and not score(item, " 13")


def test_choice_extraction() -> None:
    ch = ("Venus", "Mars", "Jupiter", "Saturn")
    assert extract_choice(" B\n", ch) == "B"
    assert extract_choice(" (C) Jupiter", ch) == "C"
    assert extract_choice(" The answer is D.", ch) == "D"
    assert extract_choice(" Mars, of course", ch) == "B"  # the option's text
    assert extract_choice(" Mars or Venus", ch) is None
    assert extract_choice(" Because", ch) is None  # letters inside words don't count


def outcome(item: str, cat: str, server: str, ok: bool | None) -> TaskOutcome:
    return TaskOutcome(item, cat, "short", server, "", (), ok)


def test_accuracy_and_paired_difference() -> None:
    outs = [outcome(f"i{n}", "math", "A", n < 6) for n in range(10)]
    outs += [outcome(f"i{n}", "math", "B", n < 3 or n == 9) for n in range(10)]
    outs += [outcome("c1", "chat", "A", None), outcome("c1", "chat", "B", None)]
    acc = {(a.group, a.server): a for a in accuracy_by(outs)}
    assert ("chat", "A") not in acc  # open items are not scored
    a = acc[("math", "A")]
    assert a.n == 10 and a.n_correct == 6
    assert a.accuracy.value == 0.6 and a.accuracy.unc == pytest.approx(math.sqrt(.6 * .4 / 9))
    (d,) = accuracy_diff(outs, "A", "B")
    assert d.n == 10 and d.accuracy_ref == 0.6 and d.accuracy_other == 0.4
    assert d.diff.value == pytest.approx(-0.2)
    assert d.only_ref_correct == 3 and d.only_other_correct == 1
    diffs = [-1, -1, -1, 1] + [0] * 6
    var = sum(x * x for x in diffs) / 10 - 0.04
    assert d.diff.unc == pytest.approx(math.sqrt(var / 9))


async def test_run_tasks_scores_outputs() -> None:
    items = [TaskItem("m1", "arithmetic", "number", "Q1", "12"),
             TaskItem("f1", "facts", "choice", "Q2", "B", choices=("x", "y", "z", "w")),
             TaskItem("c1", "code", "text", "Q3", "HELLO"),
             TaskItem("o1", "chat", "open", "Q4", None)]
    lm = ToyLM()
    lm.fixed = {"Q1": " 12\n", "Q2": " C\n", "Q3": "\nHELLO\nmore", "Q4": "a b"}
    async with lm.client("A") as c:
        outs = await run_tasks(c, items, "A")
    assert [o.correct for o in outs] == [True, False, True, None]
    assert outs[0].token_ids and outs[3].output == "a b"
    body = lm.requests[0]
    assert body["temperature"] == 0.0 and body["samplers"] == ["temperature"]
    assert body["cache_prompt"] is False and body["n_predict"] == 12


def test_the_quick_prompts_are_named_by_the_tasks_categories() -> None:
    # "math" in the prompts beside "arithmetic" in the tasks read as two things (issue 23)
    from quanttui.core.suites.prompts import builtin_suite

    assert {p.category for p in builtin_suite("quick")} <= {t.category for t in builtin_tasks()}
