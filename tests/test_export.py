"""Exports of a fixed recorded run (golden files), atomic writes, history, compare, gates.

tests/data/recorded-run.json is a real headless run of the demo pair (Q8_0 vs Q2_K). Set
UPDATE_GOLDEN=1 to rewrite the golden files after an intended format change, and read the diff.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quanttui.core.reports import csv_export, markdown
from quanttui.core.reports.compare import compare_text, match_servers
from quanttui.core.reports.gates import evaluate
from quanttui.core.reports.history import CURRENT, SCHEMA_V1, Store
from quanttui.core.reports.run_file import RunFileError, load_run, results_dict, results_from_dict
from quanttui.core.reports.schema import SCHEMA_VERSION
from quanttui.core.reports.snapshot import render_json, write_snapshot
from quanttui.core.run.pairing import DEFAULT_DRIFT_FLOOR
from quanttui.testing.fake_server import FakeLlamaServer

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden"
RECORDED = DATA / "recorded-run.json"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file"


def test_json_round_trips_exactly() -> None:
    # The recorded run is schema version 1: it loads, and writes back as the current version with
    # every stored fact unchanged. Derived figures are recomputed from the records: only the
    # paired intervals differ (v1 had bootstrap intervals, now paired Student-t ones), and fields
    # added since (ids_missing) have their defaults.
    original = json.loads(RECORDED.read_bytes())
    assert original["schema_version"] == 1
    again = json.loads(render_json(load_run(RECORDED)))
    assert again["schema_version"] == SCHEMA_VERSION
    for doc in (original, again):
        doc.pop("schema_version")
        for level in doc["paired"].values():
            for figures in level.values():
                for d in figures.values():
                    if d is not None:
                        assert d["ci_low"] <= d["mean_diff"] <= d["ci_high"]
                        del d["ci_low"], d["ci_high"]
                        # how the pairs were made (v1 had no word): side by side, one block
                        assert (d.pop("basis", "interleaved"), d.pop("floor", 0.0)) == (
                            "interleaved", 0.0)
    for s in again["servers"]:  # what the model files say they were made from: v1 had no word
        assert s.pop("requantized_from", None) is None
    # the drift floor for pairs across blocks of time (v1 had none: the default)
    assert again.pop("drift_floor") == DEFAULT_DRIFT_FLOOR
    assert again.pop("confirm_from", None) is None  # not an --until-decided run
    for rec in again["records"]:  # a figure v1 did not have: no run then reported any
        assert rec.pop("block") == 0  # v1 had no blocks: a simultaneous run is one
        assert rec.pop("token_times") == "arrival"  # v1 stamped every token on arrival
        if rec["metrics"] is not None:
            assert rec["metrics"].pop("ids_missing") == 0
    assert again == original


def test_markdown_golden() -> None:
    text = markdown.render(load_run(RECORDED))
    assert "## Speed (concurrency 1)" in text and "| gemma3-270m-Q8_0 | 12/0 |" in text
    assert "```text" in text and "decode tok/s (client, mean)" in text  # plotext chart
    golden("recorded-run.md", text)


def test_csv_golden() -> None:
    text = csv_export.render(load_run(RECORDED))
    lines = text.splitlines()
    assert lines[0].startswith("request_id,server,quant,prompt_id")
    assert len(lines) == 1 + len(json.loads(RECORDED.read_text())["records"])
    golden("recorded-run.csv", text)


def test_loader_rejects_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RunFileError, match=r"bad.json: not JSON \(line 1"):
        load_run(bad)
    bad.write_text(json.dumps({"schema": "other"}))
    with pytest.raises(RunFileError, match="not a quanttui run"):
        load_run(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(RunFileError, match=r"bad.json: not a quanttui run \(Expected `object`"):
        load_run(bad)
    data = json.loads(RECORDED.read_text())
    newer = data | {"schema_version": 99}
    with pytest.raises(RunFileError, match="newer quanttui"):
        results_from_dict(newer)
    bad.write_text(json.dumps(newer))
    with pytest.raises(RunFileError, match=r"bad.json: run written by a newer quanttui"):
        load_run(bad)
    data["records"][3]["round"] = "first"
    bad.write_text(json.dumps(data, indent=1))
    with pytest.raises(RunFileError, match=r"bad.json: not a complete quanttui run \(Expected "
                       r"`int`, got `str` - at `\$\.records\[3\]\.round`\)"):
        load_run(bad)
    with pytest.raises(RunFileError, match=r"records\[3\]\.round"):
        results_from_dict(data)
    del data["records"]
    with pytest.raises(RunFileError, match="missing required field `records`"):
        results_from_dict(data)


def test_interrupted_export_keeps_old_or_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    results = load_run(RECORDED)
    first = write_snapshot(results, tmp_path, "snap", ["json", "md", "csv"])
    before = {p.name: p.read_bytes() for p in first}

    def boom(_: object) -> str:
        raise KeyboardInterrupt  # the user hits Ctrl+C in the middle of the export

    results.notices.append({"level": "warning", "code": "x", "message": "changed",
                            "server": None})
    monkeypatch.setattr(csv_export, "render", boom)
    with pytest.raises(KeyboardInterrupt):
        write_snapshot(results, tmp_path, "snap", ["json", "md", "csv"])
    assert (tmp_path / "snap.json").read_bytes() != before["snap.json"]  # new
    assert b"changed" in (tmp_path / "snap.md").read_bytes()  # new
    assert (tmp_path / "snap.csv").read_bytes() == before["snap.csv"]  # old, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.csv", "snap.json", "snap.md"]


def test_killed_writer_never_leaves_a_broken_file(tmp_path: Path) -> None:
    target = tmp_path / "big.json"
    code = (
        "import sys, json\n"
        "from pathlib import Path\n"
        "from quanttui.core.reports.run_file import write_atomic\n"
        "i = 0\n"
        "while True:\n"
        "    write_atomic(Path(sys.argv[1]), json.dumps({'i': i, 'pad': 'x' * 8_000_000})"
        ".encode())\n"
        "    i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)])
    deadline = time.monotonic() + 20
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    data = json.loads(target.read_text())  # parses: complete, never half written
    assert len(data["pad"]) == 8_000_000


def test_history_store_and_migration(tmp_path: Path) -> None:
    data = json.loads(RECORDED.read_text())
    # a database from schema version 1 (before the summary columns)
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as db:
        db.execute(SCHEMA_V1)
        db.execute("INSERT INTO runs (created_at, schedule, data) VALUES (?, ?, ?)",
                   (data["started_at"], data["schedule"], json.dumps(data)))
        db.execute("PRAGMA user_version = 1")
    store = Store(old)
    rows = store.list()
    assert len(rows) == 1 and rows[0].servers == "gemma3-270m-Q8_0, gemma3-270m-Q2_K"
    assert rows[0].quants == "Q8_0, Q2_K - Medium"
    # what kind of run, how it ended, whether quality was measured, its verdict (v3)
    assert (rows[0].kind, rows[0].status, rows[0].quality, rows[0].verdict) == (
        "comparison", "done", "no", "gemma3-270m-Q8_0")
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == CURRENT == 3
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    new_id = store.add(data, label="again")
    assert [r.id for r in store.list()] == [new_id, rows[0].id]
    assert store.get(new_id) == data
    with pytest.raises(KeyError):
        store.get(999)


def test_compare_matches_by_hash_and_shows_change() -> None:
    a = load_run(RECORDED)
    data = json.loads(RECORDED.read_text())
    for r in data["records"]:  # "after an upgrade": every decode 10% faster
        if r["metrics"] and r["server"] == "gemma3-270m-Q2_K":
            r["metrics"]["decode_tps_client"] *= 1.1
    data["servers"][1]["name"] = "renamed"
    for r in data["records"]:
        if r["server"] == "gemma3-270m-Q2_K":
            r["server"] = "renamed"
    data["provenance"]["servers"][1]["name"] = "renamed"
    b = results_from_dict(data)
    pairs = match_servers(a, b)
    assert ("gemma3-270m-Q2_K", "renamed", "sha") in pairs
    text = compare_text(a, b, "#1", "#2")
    assert "gemma3-270m-Q2_K → renamed (matched by sha)" in text
    # two runs are two blocks of time: the interval carries the ±3% drift floor
    assert ("8.7 → 9.6 (×1.10 [1.06, 1.14]: now higher than before (n=6; measured apart in "
            "time: interval widened by the ±3% drift floor))") in text
    assert "Not the same conditions" not in text


def test_compare_gives_ttft_as_the_p50_every_other_view_gives() -> None:
    """TTFT in `compare` is the p50 the results view and the Markdown show (not a mean),
    labelled so; the paired per-prompt change follows it."""
    a = load_run(RECORDED)
    data = json.loads(RECORDED.read_text())
    for r in data["records"]:
        if r["metrics"] and r["server"] == "gemma3-270m-Q2_K":
            r["metrics"]["ttft_ms"] *= 2
    b = results_from_dict(data)
    text = compare_text(a, b, "#1", "#2")
    name = "gemma3-270m-Q2_K"
    sa, sb = a.summary(name, "ttft_ms"), b.summary(name, "ttft_ms")
    assert sa is not None and sb is not None and abs(sa.mean - sa.p50) > 0.1  # they differ
    block = text.split(f"{name} → {name}")[1]
    line = next(x for x in block.splitlines() if x.strip().startswith("TTFT"))
    assert f"p50 {sa.p50:.1f} → {sb.p50:.1f}; paired per prompt ×2.00" in line, line


def test_compare_calls_no_change_within_the_drift_floor() -> None:
    """2% faster in the later run, on every prompt alike: a plain paired interval would call
    it; two runs apart in time can't tell it from the machine's drift."""
    a = load_run(RECORDED)
    data = json.loads(RECORDED.read_text())
    for r in data["records"]:
        if r["metrics"] and r["server"] == "gemma3-270m-Q2_K":
            r["metrics"]["decode_tps_client"] *= 1.02
    text = compare_text(a, results_from_dict(data), "#1", "#2")
    line = next(x for x in text.splitlines() if "decode tok/s (client)" in x
                and "8.7" in x)
    assert "no measurable difference" in line, line


def test_compare_says_first_what_differs_and_compares_only_common_prompts() -> None:
    """Runs on different prompts: said first, and only the prompts both ran are compared (a
    different mix of prompts is not a change of speed)."""
    a = load_run(RECORDED)
    data = json.loads(RECORDED.read_text())
    data["config"]["generation"]["n_predict"] = 2 * data["config"]["generation"]["n_predict"]
    kept = {"quick-1", "quick-2"}
    data["records"] = [r for r in data["records"] if r["prompt_id"] in kept or r["warmup"]]
    for r in data["records"]:
        if r["metrics"] and r["prompt_id"] == "quick-2":
            r["metrics"]["decode_tps_client"] *= 0.5
    b = results_from_dict(data)
    text = compare_text(a, b, "#1", "#2")
    body = text.partition("\n\n")[2]
    assert "Not the same conditions" in text.split("matched by")[0]
    assert "prompts: 6 → 2, 2 in common (only those are compared)" in text
    assert "n_predict: " in text
    assert "×" in body and "no prompt in common" not in body


def test_gates_name_the_failing_figure() -> None:
    r = load_run(RECORDED)
    d = r.paired("decode_tps_client", "gemma3-270m-Q8_0", "gemma3-270m-Q2_K")
    assert d is not None and d.ratio is not None
    ok, bad, missing = (evaluate(r, min_decode_ratio=d.ratio * 0.9)[0],
                        evaluate(r, min_decode_ratio=d.ratio * 1.1)[0],
                        evaluate(r, min_same_top1=0.9)[0])
    assert ok.passed and not bad.passed and not missing.passed
    assert "decode_ratio" in bad.message and "FAILED" in bad.message
    assert f"{d.ratio:.3f}" in bad.message
    assert "same_top1" in missing.message and "not measured" in missing.message


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quanttui", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_cli_snapshot_history_compare_gates(tmp_path: Path) -> None:
    p = run_cli(["snapshot", "--from", str(RECORDED), "--format", "json,md,csv",
                 "-o", str(tmp_path)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "recorded-run.md").read_text() == markdown.render(load_run(RECORDED))
    with FakeLlamaServer() as a, FakeLlamaServer(token_delay=0.003) as b:
        args = ["run", "--headless", "--server", f"A={a.url}", "--server", f"B={b.url}",
                "-n", "8", "--prompt", "x", "--prompt", "y"]
        p1 = run_cli([*args, "-o", str(tmp_path / "r1.json")], tmp_path)
        assert p1.returncode == 0, p1.stderr
        assert "stored in the run history as #1" in p1.stdout
        # B is much slower than A: a gate asking for B at 2× A fails with exit 3
        p2 = run_cli([*args, "-o", str(tmp_path / "r2.json"), "--min-decode-ratio", "2"],
                     tmp_path)
    assert p2.returncode == 3, p2.stderr
    assert "gate decode_ratio ≥ 2 for B vs A" in p2.stderr and "FAILED" in p2.stderr
    h = run_cli(["history"], tmp_path)
    assert h.returncode == 0 and "A, B" in h.stdout and h.stdout.count("simultaneous") == 2
    c = run_cli(["compare", "1", "2"], tmp_path)
    assert c.returncode == 0 and "A → A (matched by" in c.stdout
    assert run_cli(["compare", "1", "9"], tmp_path).returncode == 2
    stored = Store().get(1)
    assert stored["records"] == json.loads((tmp_path / "r1.json").read_text())["records"]
    assert json.loads(json.dumps(results_dict(results_from_dict(stored)))) == stored


def test_svg_of_the_screen_shows_the_results_view(tmp_path: Path) -> None:
    """The headless SVG is the answer: the results view with every server's row, the run's
    own memory peaks, the verdict, and what was within noise."""
    import html
    import re

    from quanttui.tui.export import render_svg

    results = load_run(RECORDED)
    (path,) = write_snapshot(results, tmp_path, "s", ["svg"],
                             svg=lambda r: render_svg(r, (160, 48)))
    svg = path.read_text()
    # runs of spaces align the columns: SVG 1.1 renderers (rsvg) keep them only when asked
    assert svg.startswith('<svg xml:space="preserve" ')
    text = html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")
    for part in ("Results", "6 prompts × 2", "Speed", "Memory", "Quality against",
                 "Q8_0 (ref)", "Q2_K",  # one row per server, by its quant
                 "Run gemma3-270m-Q8_0",  # the verdict
                 "Within noise", "no measurable difference"):
        assert part in text, part
    hw = results.hardware
    assert hw is not None
    for name in ("gemma3-270m-Q8_0", "gemma3-270m-Q2_K"):  # the run's own peaks
        rss = hw["servers"][name]["rss_peak"]
        assert f"{rss / 1e6:.0f} MB" in text


def test_compare_names_a_change_of_outside_load() -> None:
    """A run measured while other processes kept the host busy: said among the conditions."""
    quiet = json.loads(RECORDED.read_text())
    busy = json.loads(RECORDED.read_text())
    quiet["hardware"]["host"]["other_cpu_cores_mean"] = 0.1
    busy["hardware"]["host"]["other_cpu_cores_mean"] = 1.6
    text = compare_text(results_from_dict(quiet), results_from_dict(busy), "#1", "#2")
    assert "other processes' load: 0.1 → 1.6 cores busy on average" in text
    same = compare_text(results_from_dict(quiet), results_from_dict(quiet), "#1", "#2")
    assert "other processes' load" not in same


def test_a_two_server_report_leads_with_its_answer() -> None:
    """Not only ladders: a comparison's Markdown and stdout start with the verdict, and the
    Markdown says it in words, before the details."""
    from quanttui.core.reports.summary import format_summary

    results = load_run(RECORDED)
    md = markdown.render(results)
    head = md.split("## Servers")[0]
    assert "## Verdict" in head and "## In words" in head and "Run gemma3-270m-Q8_0" in head
    assert format_summary(results).startswith("verdict: Run gemma3-270m-Q8_0")


def test_snapshot_writes_to_the_export_dir_and_says_full_paths(tmp_path: Path) -> None:
    """Without -o a snapshot goes where runs are exported (run.export_dir), not the current
    folder, and names each file in full."""
    p = run_cli(["snapshot", "--from", str(RECORDED), "--format", "json,md"], tmp_path)
    assert p.returncode == 0, p.stderr
    printed = p.stdout.split()
    expected = [str(tmp_path / "quanttui-exports" / f"recorded-run.{x}") for x in ("json", "md")]
    assert printed == expected
    assert all(Path(x).is_file() for x in expected)
