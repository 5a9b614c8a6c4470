"""Which files make a ladder, and the CLI's answer when they don't (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gguf import LlamaFileType

from quanttui.core.ladder.lineup import LadderError, collect_models, lineup
from quanttui.core.models.discovery import REQUANTIZED_KEY
from test_models_discovery import write_gguf

PY = sys.executable


def _quants(tmp_path: Path) -> list[Path]:
    return [write_gguf(tmp_path / "m-Q8_0.gguf", file_type=LlamaFileType.MOSTLY_Q8_0),
            write_gguf(tmp_path / "m-Q4_K_M.gguf", file_type=LlamaFileType.MOSTLY_Q4_K_M)]


def test_a_folder_of_quants_is_ordered_and_the_highest_is_the_reference(tmp_path: Path
                                                                        ) -> None:
    _quants(tmp_path)
    lu = lineup(collect_models([tmp_path]))
    assert lu.names == ["Q8_0", "Q4_K_M"] or lu.names == ["Q4_K_M", "Q8_0"]
    assert lu.reference == lu.names[0]
    assert lineup(collect_models([tmp_path]), reference="Q4_K_M").reference == "Q4_K_M"
    with pytest.raises(LadderError, match="choose one of"):
        lineup(collect_models([tmp_path]), reference="Q5_K")


def test_the_source_of_requantized_files_is_the_reference(tmp_path: Path) -> None:
    write_gguf(tmp_path / "m-Q4_K_M.gguf", file_type=LlamaFileType.MOSTLY_Q4_K_M)
    write_gguf(tmp_path / "m-Q8_0.gguf", file_type=LlamaFileType.MOSTLY_Q8_0,
               extra=lambda w: w.add_string(REQUANTIZED_KEY, "Q4_K_M"))
    lu = lineup(collect_models([tmp_path]))
    assert lu.reference == "Q4_K_M"
    assert lu.rung("Q8_0").model.requantized_from == "Q4_K_M"


def test_files_that_are_not_one_models_quants(tmp_path: Path) -> None:
    a = write_gguf(tmp_path / "a.gguf", arch="llama")
    b = write_gguf(tmp_path / "b.gguf", arch="qwen2")
    with pytest.raises(LadderError, match="quants of one model"):
        lineup(collect_models([a, b]))
    with pytest.raises(LadderError, match="at least 2 quants"):
        lineup(collect_models([a]))
    v = write_gguf(tmp_path / "v.gguf", tokens=["a", "b", "c"])
    with pytest.raises(LadderError, match="vocabulary"):
        lineup(collect_models([a, v]))


@pytest.mark.parametrize("case", ["one file", "not gguf", "missing", "empty folder",
                                  "two models"])
def test_cli_refuses_bad_ladders_clearly(tmp_path: Path, case: str) -> None:
    a = _quants(tmp_path)[0]
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    empty = tmp_path / "empty"
    empty.mkdir()
    other = write_gguf(tmp_path / "other.gguf", arch="qwen2")
    args = {"one file": [a], "not gguf": [a, txt], "missing": [a, tmp_path / "nope.gguf"],
            "empty folder": [empty], "two models": [a, other]}[case]
    p = subprocess.run([PY, "-m", "quanttui", "ladder", *map(str, args), "--no-history"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "error" in p.stderr.lower()
    named = {"one file": "a ladder needs", "not gguf": "notes.txt", "missing": "nope.gguf",
             "empty folder": "empty", "two models": "other.gguf"}[case]
    assert named in p.stderr


def test_ladder_takes_the_configs_task_sets(tmp_path: Path) -> None:
    """[quality] tasks count for a ladder as for a run: a task file that is not there is
    named before any server starts."""
    quants = _quants(tmp_path)
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text('[quality]\ntasks = ["word-problems.jsonl"]\n')
    p = subprocess.run([PY, "-m", "quanttui", "--config", str(cfg), "ladder",
                        *map(str, quants), "--no-history"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "word-problems.jsonl" in p.stderr
