"""The hardware summary of a run (JSON), and how its memory figures read in each face."""

from __future__ import annotations

from pathlib import Path

from quanttui.core.hardware import (
    NA,
    HostInfo,
    HostSample,
    HwSample,
    ModelPages,
    ProcessSample,
    Reading,
    format_bytes,
)
from quanttui.core.hardware.summary import hardware_json, summary_sample
from quanttui.core.reports import markdown
from quanttui.core.reports.run_file import load_run
from quanttui.core.reports.summary import format_summary

RECORDED = Path(__file__).parent / "data" / "recorded-run.json"
HOST = HostInfo("Test CPU", "x86_64", "Linux", 2, 2, 24_000_000_000)
REMOTE = NA("remote server (gpu-box)")


def pages(resident: int, file: int, shared: int = 0, inode: int = 7) -> ModelPages:
    return ModelPages(resident_bytes=resident, shared=shared > 0, shared_bytes=shared,
                      file_bytes=file, paths=(f"/m/{inode}.gguf",), files=(("fe:00", inode),))


def proc(name: str, rss: Reading[int], private: Reading[int], model: Reading[ModelPages],
         shared_with: tuple[str, ...] = ()) -> ProcessSample:
    return ProcessSample(name, 100, rss, 50_000_000, 150_000_000, 95.0, 4, (0, 1), NA("flags"),
                         NA("GPU sampling is off"), private, model, shared_with)


def tick(seq: int, *procs: ProcessSample) -> HwSample:
    host = HostSample(50.0, (50.0, 50.0), (1.0, 1.0, 1.0), 24_000_000_000, 4_000_000_000,
                      20_000_000_000, 0, 0)
    return HwSample(seq, seq, 1000, host, procs, NA("GPU sampling is off"))


def history() -> list[HwSample]:
    # A and B map one file (B also seen sharing by its smaps); C has its own; R is remote.
    return [
        tick(1, proc("A", 300_000_000, 60_000_000, pages(200_000_000, 237_077_184, 0), ("B",)),
             proc("B", 310_000_000, 70_000_000, pages(210_000_000, 237_077_184, 210_000_000),
                  ("A",)),
             proc("C", 280_000_000, 90_000_000, pages(180_000_000, 253_000_000, 0, inode=8)),
             proc("R", REMOTE, REMOTE, REMOTE)),
        tick(2, proc("A", 320_000_000, 84_000_000, pages(231_000_000, 237_077_184, 0), ("B",)),
             proc("B", 300_000_000, 65_000_000, pages(220_000_000, 237_077_184, 220_000_000),
                  ("A",)),
             proc("C", 290_000_000, 95_000_000, pages(181_000_000, 253_000_000, 0, inode=8)),
             proc("R", REMOTE, REMOTE, REMOTE)),
    ]


def summary() -> dict[str, object]:
    return hardware_json(history(), HOST, [("A", None), ("B", None), ("C", None), ("R", None)])


def test_server_json_keys_old_and_new() -> None:
    servers = summary()["servers"]
    assert isinstance(servers, dict)
    a, c, r = servers["A"], servers["C"], servers["R"]
    # keys older runs had, unchanged
    assert a["rss_peak"] == 320_000_000 and a["rss_last"] == 320_000_000
    assert a["uss_peak"] == 50_000_000 and a["pss_peak"] == 150_000_000
    assert a["vram_peak"] == {"n/a": "GPU sampling is off"}
    # new ones
    assert a["private_peak"] == 84_000_000
    assert a["model_pages_peak"] == 231_000_000
    assert a["model_file"] == 237_077_184  # no path given: the size of the file it maps
    assert a["shared_model_file"] is True and a["model_shared_with"] == ["B"]
    assert servers["B"]["model_shared_with"] == ["A"]
    assert c["shared_model_file"] is False and c["model_shared_with"] == []
    assert c["model_pages_peak"] == 181_000_000
    for key in ("private_peak", "model_pages_peak", "rss_peak", "shared_model_file"):
        assert r[key] == {"n/a": REMOTE.reason}  # never 0, never False
    assert r["model_file"] == {"n/a": "server did not say its model path"}


def test_stored_summary_comes_back_as_a_sample() -> None:
    s = summary_sample(summary())
    a = s.process("A")
    assert a is not None and a.private_bytes == 84_000_000 and a.rss_bytes == 320_000_000
    assert isinstance(a.model, ModelPages)
    assert (a.model.resident_bytes, a.model.file_bytes) == (231_000_000, 237_077_184)
    assert a.model.shared and a.model_shared_with == ("B",)
    r = s.process("R")
    assert r is not None and r.model == REMOTE and r.private_bytes == REMOTE
    # a run stored before private memory and model pages were measured
    old = summary_sample(load_run(RECORDED).hardware or {})
    q8 = old.process("gemma3-270m-Q8_0")
    assert q8 is not None and q8.rss_bytes == 386_306_048
    assert q8.private_bytes == NA("not in the stored run")
    assert q8.model == NA("not in the stored run")


def test_markdown_memory_table() -> None:
    results = load_run(RECORDED)
    results.hardware = summary()
    text = markdown.render(results)
    memory = text[text.index("## Memory"):text.index("Host:")]
    assert ("| server | private peak | model pages peak | model file | RSS peak | VRAM peak | "
            "CPU mean |") in memory
    assert "| A | 84 MB | 231 MB (shared) | 237 MB | 320 MB | n/a | 95% of a core |" in memory
    assert "| C | 95 MB | 181 MB | 253 MB | 290 MB | n/a | 95% of a core |" in memory
    assert "| R | n/a | n/a | n/a | n/a | n/a | 95% of a core |" in memory
    assert "USS" not in memory.split("\n\n")[1]  # the table: USS/PSS stay in the JSON
    assert "Model file shared (shown as \"(shared)\"): A with B; B with A." in memory
    assert "n/a: GPU sampling is off; remote server (gpu-box); server did not say" in memory
    assert "RAM 24.0 GB" in text[text.index("Host:"):]


def test_markdown_memory_table_of_an_older_run() -> None:
    text = markdown.render(load_run(RECORDED))
    assert "| server | RSS peak | USS peak | PSS peak | VRAM peak | model file | CPU mean |" in text
    assert "| gemma3-270m-Q8_0 | 386 MB | 84 MB | 230 MB | n/a | 292 MB | 39% of a core |" in text


def test_text_summary_memory_lines() -> None:
    results = load_run(RECORDED)
    results.hardware = summary()
    lines = [x for x in format_summary(results).splitlines() if x.startswith("memory ")]
    assert lines == [
        "memory A: private peak 84 MB, model pages peak 231 MB of the 237 MB file (shared with "
        "B), RSS peak 320 MB, CPU 95% of a core",
        "memory B: private peak 70 MB, model pages peak 220 MB of the 237 MB file (shared with "
        "A), RSS peak 310 MB, CPU 95% of a core",
        "memory C: private peak 95 MB, model pages peak 181 MB of the 253 MB file, RSS peak "
        "290 MB, CPU 95% of a core",
        "memory R: n/a (remote server (gpu-box)), model file n/a (server did not say its model "
        "path), CPU 95% of a core",
    ]
    old = [x for x in format_summary(load_run(RECORDED)).splitlines() if x.startswith("memory ")]
    assert old[0] == ("memory gemma3-270m-Q8_0: RSS peak 386 MB, USS peak 84 MB, model file "
                      "292 MB, CPU 39% of a core")


def test_one_size_format() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(999) == "999 B"
    assert format_bytes(1_500) == "2 kB"
    assert format_bytes(237_077_184) == "237 MB"  # llama.cpp logs this file as 226.1 MiB
    assert format_bytes(999_400_000) == "999 MB"
    assert format_bytes(999_600_000) == "1.0 GB"  # never "1000 MB"
    assert format_bytes(25_325_268_992) == "25.3 GB"
    assert format_bytes(1.2e12) == "1.2 TB"
