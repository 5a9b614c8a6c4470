"""Task items: prompts with checkable answers, and how an output is scored against them.

The built-in suite is written for this project. Its prompts are completion-style (question,
then `Answer:` or `Output:`), because the demo model is a small base model; few-shot examples
make the expected format clear. Categories: arithmetic (exact numbers), facts (multiple choice,
answered with a letter), code (the output of a short program), chat (no single answer: compared
between servers by output divergence only). Each comes in short, medium (few-shot) and long
(a passage or a longer program) prompts.

Scoring is generative, as lm-evaluation-harness's generative tasks: greedy output, the first
non-empty line, then an exact check (number, letter, or text). Items of kind "program" (HumanEval,
`core.suites.humaneval`) are checked by running the program `prompt + output`, then its tests
(the answer) against it, through a runner the caller passes (the sandbox,
`core.quality.code_exec`). Running the items on
servers and accuracy per category are in `core.quality.accuracy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

TaskKind = Literal["number", "choice", "text", "open", "program"]
Length = Literal["short", "medium", "long"]
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True, slots=True)
class TaskItem:
    id: str
    category: str
    kind: TaskKind
    prompt: str
    answer: str | None  # None for open items
    length: Length = "short"
    n_predict: int = 12
    choices: tuple[str, ...] = ()  # for kind "choice": the options, lettered A, B, ...
    stop: tuple[str, ...] = ()  # stop strings for the completion (kind "program": HumanEval's)


@dataclass(frozen=True, slots=True)
class Check:
    """An output checked: correct or not (None: not scored), why not, and notes on how it was
    checked (e.g. "network not isolated") that the report shows once."""

    correct: bool | None
    detail: str | None = None
    notes: tuple[str, ...] = ()


ProgramRunner = Callable[[str, str], Check]
"""Runs a program, then its tests against it, and says whether they passed
(`core.quality.code_exec.runner`)."""


# ------------------------------------------------------------------ scoring


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def extract_number(text: str) -> Decimal | None:
    """The last number on the first non-empty line (`12`, `7 + 5 = 12`, `1,250`), as
    lm-evaluation-harness's flexible extraction takes the last number of an answer."""
    found = _NUMBER.findall(first_line(text))
    if not found:
        return None
    try:
        return Decimal(found[-1].replace(",", ""))
    except InvalidOperation:
        return None


def extract_choice(text: str, choices: Sequence[str] = ()) -> str | None:
    """The letter answered: `B`, `B.`, `(B)`, `B) Mars`, or the text of exactly one option."""
    line = first_line(text)
    n = max(len(choices), 4)
    m = re.search(rf"(?<![A-Za-z])([{LETTERS[:n]}])(?![A-Za-z])", line)
    if m:
        return m.group(1)
    hits = [LETTERS[i] for i, c in enumerate(choices) if c and c.lower() in line.lower()]
    return hits[0] if len(hits) == 1 else None


def score(item: TaskItem, output: str) -> bool | None:
    """True/False for checkable items, None for open ones (and for programs: see `check`)."""
    if item.kind in ("open", "program") or item.answer is None:
        return None
    if item.kind == "number":
        got = extract_number(output)
        return got is not None and got == Decimal(item.answer)
    if item.kind == "choice":
        return extract_choice(output, item.choices) == item.answer
    return first_line(output) == item.answer.strip()


def check(item: TaskItem, output: str, run_program: ProgramRunner | None = None) -> Check:
    """`score` with the reason. A "program" item runs the program `prompt + output` and then
    its tests (the answer) through `run_program`; without one it is not scored."""
    if item.kind != "program":
        return Check(score(item, output))
    if run_program is None or item.answer is None:
        return Check(None, "not run: code execution is not allowed")
    return run_program(item.prompt + output, item.answer)


# ------------------------------------------------------------------ the built-in suite


def _mc(question: str, choices: Sequence[str], answer: str | None = None) -> str:
    lines = [f"Question: {question}"] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    lines.append("Answer:" + (f" {answer}" if answer else ""))
    return "\n".join(lines)


_ARITH_SHOTS = ("Question: What is 3 + 4?\nAnswer: 7\n\n"
                "Question: What is 10 - 6?\nAnswer: 4\n\n"
                "Question: What is 5 * 3?\nAnswer: 15\n\n")

_STORY_SHOT = (
    "Read the story and answer the question with a number.\n\n"
    "Story: Lena had 4 pencils. Her brother gave her 3 more, and she lost 2 on the bus.\n"
    "Question: How many pencils does Lena have now?\nAnswer: 5\n\n"
)

_ARITHMETIC: list[tuple[Length, str, str]] = [
    ("short", "Question: What is 7 + 5?\nAnswer:", "12"),
    ("short", "Question: What is 9 * 6?\nAnswer:", "54"),
    ("short", "Question: What is 100 - 37?\nAnswer:", "63"),
    ("short", "Question: What is 48 / 6?\nAnswer:", "8"),
    ("medium", _ARITH_SHOTS + "Question: What is 8 + 9?\nAnswer:", "17"),
    ("medium", _ARITH_SHOTS + "Question: What is 12 * 4?\nAnswer:", "48"),
    ("medium", _ARITH_SHOTS + "Question: What is 250 - 125?\nAnswer:", "125"),
    ("medium", _ARITH_SHOTS + "Question: What is 81 / 9?\nAnswer:", "9"),
    ("long", _STORY_SHOT + (
        "Story: A baker made 24 rolls in the morning and 18 rolls in the afternoon. By the "
        "evening she had sold 30 of them, and she gave the rest to a neighbour who runs a "
        "small shelter in the next street. The neighbour thanked her and promised to bring "
        "back the empty baskets the next day.\n"
        "Question: How many rolls did the baker give to the neighbour?\nAnswer:"), "12"),
    ("long", _STORY_SHOT + (
        "Story: A school bus leaves the depot with no passengers. At the first stop 11 "
        "children get on. At the second stop 7 more get on. At the third stop 5 children get "
        "off, and at the last stop before the school 3 more get on. The driver counts the "
        "children as they walk into the school.\n"
        "Question: How many children does the driver count?\nAnswer:"), "16"),
    ("long", _STORY_SHOT + (
        "Story: Omar is saving for a bicycle that costs 150 dollars. He already has 60 "
        "dollars. Each week he earns 15 dollars by walking his neighbour's dog, and he saves "
        "all of it. He does not spend any of his savings until he can buy the bicycle.\n"
        "Question: How many weeks must Omar save to have exactly enough?\nAnswer:"), "6"),
    ("long", _STORY_SHOT + (
        "Story: A garden has 5 rows of tulips with 8 tulips in each row. A late frost kills "
        "6 of the tulips, and the gardener plants 10 new ones in their place and along the "
        "path.\n"
        "Question: How many tulips are in the garden now?\nAnswer:"), "44"),
]

_FACT_SHOTS = (
    _mc("What is the largest ocean on Earth?",
        ["Atlantic Ocean", "Indian Ocean", "Pacific Ocean", "Arctic Ocean"], "C") + "\n\n"
    + _mc("How many legs does a spider have?", ["Six", "Eight", "Ten", "Four"], "B") + "\n\n"
)

_PASSAGE = (
    "Read the passage and answer the question.\n\n"
    "Passage: The European eel begins its life in the Sargasso Sea, a calm region of the "
    "western Atlantic Ocean. The tiny larvae drift on the Gulf Stream toward Europe for a year "
    "or more. Near the coast they become glass eels and swim up rivers, where they may live "
    "for ten or twenty years. Then they return across the ocean to spawn once and die. The "
    "Danish biologist Johannes Schmidt located the spawning area by catching ever smaller "
    "larvae as he sailed west.\n\n"
)

_FACTS: list[tuple[Length, str, tuple[str, ...], str]] = [
    ("short", "Which planet is known as the Red Planet?",
     ("Venus", "Mars", "Jupiter", "Saturn"), "B"),
    ("short", "What is the capital of Italy?", ("Madrid", "Paris", "Rome", "Berlin"), "C"),
    ("short", "What gas do plants absorb from the air for photosynthesis?",
     ("Carbon dioxide", "Oxygen", "Nitrogen", "Helium"), "A"),
    ("short", "How many continents are there on Earth?", ("Five", "Six", "Eight", "Seven"),
     "D"),
    ("medium", "What is the chemical symbol for gold?", ("Ag", "Au", "Gd", "Go"), "B"),
    ("medium", "Which animal is the largest mammal?",
     ("Elephant", "Giraffe", "Blue whale", "Hippopotamus"), "C"),
    ("medium", "At what temperature in Celsius does water boil at sea level?",
     ("100", "90", "50", "212"), "A"),
    ("medium", "Who wrote the play Romeo and Juliet?",
     ("Charles Dickens", "Jane Austen", "Mark Twain", "William Shakespeare"), "D"),
    ("long", "Where does the European eel begin its life?",
     ("In European rivers", "In the Sargasso Sea", "In the Gulf of Mexico", "In the Baltic Sea"),
     "B"),
    ("long", "How long may eels live in rivers before returning to the ocean?",
     ("One or two months", "About one year", "Ten or twenty years", "Fifty years"), "C"),
    ("long", "What do the larvae drift on toward Europe?",
     ("The Gulf Stream", "The Nile", "The trade winds", "Floating ice"), "A"),
    ("long", "How did Johannes Schmidt locate the spawning area?",
     ("By following adult eels with radio tags", "By asking fishermen",
      "By reading Aristotle", "By catching ever smaller larvae as he sailed west"), "D"),
]

_CODE_SHOTS = ("Program:\nprint(1 + 1)\nOutput: 2\n\n"
               "Program:\nprint('ab' * 3)\nOutput: ababab\n\n"
               "Program:\nprint(len([4, 5, 6]))\nOutput: 3\n\n")

_CODE: list[tuple[Length, str, str]] = [
    ("short", "```python\nprint(2 + 3 * 4)\n```\nOutput:", "14"),
    ("short", "```python\nprint('hello'.upper())\n```\nOutput:", "HELLO"),
    ("short", "```python\nprint(len('banana'))\n```\nOutput:", "6"),
    ("medium", _CODE_SHOTS + "Program:\nprint(10 // 3)\nOutput:", "3"),
    ("medium", _CODE_SHOTS + "Program:\nprint(sum([1, 2, 3, 4]))\nOutput:", "10"),
    ("medium", _CODE_SHOTS + "Program:\nprint('cat'[::-1])\nOutput:", "tac"),
    ("long", _CODE_SHOTS + (
        "Program:\n"
        "def count_vowels(word):\n"
        "    \"\"\"Return how many vowels the word has.\"\"\"\n"
        "    total = 0\n"
        "    for letter in word.lower():\n"
        "        if letter in 'aeiou':\n"
        "            total += 1\n"
        "    return total\n\n"
        "print(count_vowels('Banana'))\nOutput:"), "3"),
    ("long", _CODE_SHOTS + (
        "Program:\n"
        "def largest(values):\n"
        "    \"\"\"Return the largest value in a non-empty list.\"\"\"\n"
        "    best = values[0]\n"
        "    for v in values[1:]:\n"
        "        if v > best:\n"
        "            best = v\n"
        "    return best\n\n"
        "print(largest([3, 17, 5, 11]))\nOutput:"), "17"),
    ("long", _CODE_SHOTS + (
        "Program:\n"
        "def first_word(sentence):\n"
        "    \"\"\"Return the first word of a sentence.\"\"\"\n"
        "    words = sentence.split()\n"
        "    if not words:\n"
        "        return ''\n"
        "    return words[0]\n\n"
        "print(first_word('quiet rivers run deep'))\nOutput:"), "quiet"),
]

_CHAT: list[tuple[Length, str]] = [
    ("short", "Here are three tips for staying focused while studying:\n1."),
    ("short", "A short, friendly note to a neighbour who helped carry groceries:"),
    ("medium", "The following is a conversation between a customer and a librarian.\n\n"
               "Customer: Hello, I'm looking for a book about the history of maps.\n"
               "Librarian: Of course. Are you interested in old maps or in how maps are "
               "made today?\nCustomer: Mostly the old ones, from before satellites.\n"
               "Librarian:"),
    ("medium", "Write a short description of a rainy afternoon in a city park.\n\n"
               "Description:"),
    ("long", _PASSAGE + "Summary of the passage in two sentences:"),
    ("long", "The history of timekeeping is a story of steady improvement. Sundials told the "
             "hour when the sun shone; water clocks worked at night but drifted with the "
             "temperature. Mechanical clocks with escapements appeared in European towers in "
             "the thirteenth century, and the pendulum, introduced in the seventeenth, made "
             "clocks accurate to seconds a day. Marine chronometers solved the problem of "
             "longitude at sea, quartz crystals brought accuracy to wristwatches, and atomic "
             "clocks now keep time so well that they would lose less than a second in "
             "millions of years.\n\nIn one paragraph, explain why accurate clocks mattered "
             "for sailors:"),
]


def builtin_tasks() -> list[TaskItem]:
    """The built-in suite: arithmetic, facts, code and chat, in short, medium and long prompts."""
    items: list[TaskItem] = []
    for i, (length, prompt, answer) in enumerate(_ARITHMETIC, 1):
        # Gemma tokenizes digits one by one: room for "7 + 5 = 12".
        items.append(TaskItem(f"arith-{i}", "arithmetic", "number", prompt, answer, length, 16))
    for i, (length, q, choices, answer) in enumerate(_FACTS, 1):
        prefix = {"short": "", "medium": _FACT_SHOTS, "long": _PASSAGE}[length]
        items.append(TaskItem(f"facts-{i}", "facts", "choice", prefix + _mc(q, choices), answer,
                              length, 4, choices))
    for i, (length, prompt, answer) in enumerate(_CODE, 1):
        items.append(TaskItem(f"code-{i}", "code", "text", prompt, answer, length, 10))
    for i, (length, prompt) in enumerate(_CHAT, 1):
        items.append(TaskItem(f"chat-{i}", "chat", "open", prompt, None, length, 32))
    return items


def length_class(prompt: str) -> Length:
    """For items from files: by prompt size (the built-in suite states its own)."""
    n = len(prompt)
    return "short" if n < 300 else "medium" if n < 1200 else "long"
