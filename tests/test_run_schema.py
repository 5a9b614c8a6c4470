"""The run JSON's structs (core.reports.schema): exports decode with them, and the JSON Schema
in docs/ is the one they generate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import msgspec

from quanttui.core.reports.run_file import load_run
from quanttui.core.reports.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    LevelStats,
    PairedLevel,
    RoundDoc,
    RunDoc,
    json_schema,
)
from quanttui.core.reports.snapshot import render_json
from quanttui.core.run.records import PAIRED_METRICS, SUMMARY_METRICS, RoundRecord

ROOT = Path(__file__).parent.parent
RECORDED = Path(__file__).parent / "data" / "recorded-run.json"


def test_committed_json_schema_is_current() -> None:
    committed = json.loads((ROOT / "docs" / "run.schema.json").read_text())
    assert committed == json.loads(json_schema()), (
        "docs/run.schema.json is out of date: "
        "python -m quanttui.core.reports.schema > docs/run.schema.json")


def test_export_of_the_recorded_run_decodes_as_run_doc() -> None:
    doc = msgspec.json.decode(render_json(load_run(RECORDED)), type=RunDoc)
    assert (doc.schema, doc.schema_version) == (SCHEMA, SCHEMA_VERSION)
    assert len(doc.records) == 26 and doc.records[0].metrics is not None
    assert doc.stats["gemma3-270m-Q8_0"][1].n_ok == 12
    assert doc.quality is msgspec.UNSET
    old = msgspec.json.decode(RECORDED.read_bytes(), type=RunDoc)  # version 1 as it is
    assert old.schema_version == 1 and old.records == doc.records


def test_structs_follow_the_metric_lists() -> None:
    fields = LevelStats.__struct_fields__
    assert fields[:len(SUMMARY_METRICS)] == SUMMARY_METRICS
    assert PairedLevel.__struct_fields__ == PAIRED_METRICS
    names = [f.name for f in dataclasses.fields(RoundRecord)]
    assert list(RoundDoc.__struct_fields__[:len(names)]) == names
