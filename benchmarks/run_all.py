"""Run every benchmark and print one table: script, target, measured, pass/fail.

By default each script runs short (the options below), so the whole set takes about 6 minutes
on 2 cores, most of it in the two that start llama-servers (tui_overhead, quality_vs_perplexity).
Short runs are for "did anything break"; take numbers to quote from --full runs on a quiet
machine, where each script runs with its own, longer defaults (~30 minutes in all).

    script                 short options (default)                               time
    ingest                 --events 20000 --rounds 3                             ~20 s
    engine_cost            --prompts 4 --rounds 2 --fast-tokens 1000             ~15 s
                           --fast-prompts 2
    fidelity               --requests 2                                          ~45 s
    discovery              --no-reader                                           ~20 s
    poller_cost            --seconds-1hz 30 --seconds-10hz 3 --iterations 100    ~40 s
    tui_overhead           --seconds 6 --settle 2 --idle-seconds 4               ~2.5 min
                           --fast-seconds 4 --fast-phases 2
    quality_vs_perplexity  --chunks 2                                            ~2 min
    memory_breakdown       --quants IQ4_NL,Q8_0 --contexts 2048,16384            ~3 min

Every other script in benchmarks/ (a name not starting with "_") runs too: short, with the
list in its module-level `SHORT_ARGS = [...]` if it has one, else with its own defaults.

Each script prints `target …, measured …` per target and exits 1 when one is missed; the
targets come back through a JSON file named in QUANTTUI_BENCH_RESULTS. A script that fails to
run, times out or reports no target counts as a miss. Exit status: 0 when every target of every
script that ran was met, 1 otherwise.

    .venv/bin/python benchmarks/run_all.py                     # short, ~6 min
    .venv/bin/python benchmarks/run_all.py --full              # each script's own defaults
    .venv/bin/python benchmarks/run_all.py --only ingest,engine_cost
    .venv/bin/python benchmarks/run_all.py --json results.json --quiet
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent

SHORT: dict[str, list[str]] = {
    "ingest": ["--events", "20000", "--rounds", "3"],
    "engine_cost": ["--prompts", "4", "--rounds", "2", "--fast-tokens", "1000",
                    "--fast-prompts", "2"],
    "fidelity": ["--requests", "2"],
    "discovery": ["--no-reader"],
    "poller_cost": ["--seconds-1hz", "30", "--seconds-10hz", "3", "--iterations", "100"],
    "tui_overhead": ["--seconds", "6", "--settle", "2", "--idle-seconds", "4",
                     "--fast-seconds", "4", "--fast-phases", "2"],
    "quality_vs_perplexity": ["--chunks", "2"],
}


def scripts() -> list[str]:
    """The benchmark scripts here: the known ones in their order, then any others."""
    found = {p.stem for p in HERE.glob("*.py")
             if not p.stem.startswith("_") and p.stem != Path(__file__).stem}
    return [n for n in SHORT if n in found] + sorted(found - set(SHORT))


def short_args(name: str) -> list[str]:
    if name in SHORT:
        return SHORT[name]
    tree = ast.parse((HERE / f"{name}.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "SHORT_ARGS" for t in node.targets):
            return [str(x) for x in ast.literal_eval(node.value)]
    return []


def run_one(name: str, extra: list[str], timeout: float, quiet: bool) -> dict[str, object]:
    """Run one script; its targets (or why there are none), exit status and time."""
    with tempfile.TemporaryDirectory(prefix="quanttui-bench-") as tmp:
        out = Path(tmp) / "targets.json"
        env = dict(os.environ, QUANTTUI_BENCH_RESULTS=str(out))
        cmd = [sys.executable, str(HERE / f"{name}.py"), *extra]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.monotonic()
        problem = None
        try:
            p = subprocess.run(cmd, env=env, timeout=timeout, text=True,
                               stdout=subprocess.PIPE if quiet else None,
                               stderr=subprocess.STDOUT if quiet else None, check=False)
            rc: int | None = p.returncode
            if rc not in (0, 1):
                problem = f"exited with status {rc}"
                if quiet and p.stdout:
                    print(p.stdout[-3000:], end="")
        except subprocess.TimeoutExpired:
            rc, problem = None, f"timed out after {timeout:g} s"
        took = time.monotonic() - t0
        targets: list[dict[str, object]] = []
        if out.exists():
            targets = json.loads(out.read_text())["targets"]
        elif problem is None:
            problem = "reported no target"
    return {"script": name, "args": extra, "rc": rc, "seconds": round(took, 1),
            "problem": problem, "targets": targets}


def table(results: list[dict[str, object]]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for r in results:
        targets = r["targets"]
        assert isinstance(targets, list)
        for t in targets:
            rows.append((str(r["script"]), str(t["target"]), str(t["value"]),
                         "pass" if t["ok"] else "FAIL"))
        if r["problem"]:
            rows.append((str(r["script"]), "(the script ran to the end)", str(r["problem"]),
                         "FAIL"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true",
                    help="run each script with its own (longer) defaults instead of short ones")
    ap.add_argument("--only", help="comma-separated scripts to run (default: all)")
    ap.add_argument("--skip", help="comma-separated scripts to leave out")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per script (default: 600 short, 1800 with --full)")
    ap.add_argument("--quiet", action="store_true",
                    help="hide the scripts' own output (shown when one fails to run)")
    ap.add_argument("--json", type=Path, help="also write every result to this file")
    args = ap.parse_args()
    names = scripts()
    for opt in (args.only, args.skip):
        unknown = set((opt or "").split(",")) - set(names) - {""}
        if unknown:
            ap.error(f"unknown script(s): {', '.join(sorted(unknown))}; "
                     f"known: {', '.join(names)}")
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    if args.skip:
        names = [n for n in names if n not in args.skip.split(",")]
    timeout = args.timeout or (1800.0 if args.full else 600.0)

    t0 = time.monotonic()
    results = [run_one(n, [] if args.full else short_args(n), timeout, args.quiet)
               for n in names]
    rows = table(results)
    heads = ("script", "target", "measured", "result")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(heads)]
    took = ", ".join(f"{r['script']} {r['seconds']:.0f} s" for r in results)
    print(f"\n{'full' if args.full else 'short'} runs, {time.monotonic() - t0:.0f} s in all "
          f"({took})")
    line = "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    failed = [r for r in rows if r[3] != "pass"]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} targets met"
          + (f"; {len(failed)} missed" if failed else ""))
    if args.json:
        args.json.write_text(json.dumps({"mode": "full" if args.full else "short",
                                         "results": results}, indent=1))
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
