"""NVML adapter against a fake pynvml: every way NVML can be absent or fail."""

from __future__ import annotations

import os
import threading

import pytest

from fake_pynvml import FakeGpu, FakeNvml, install, uninstall
from quanttui.core.hardware import NA, HardwarePoller, HwSample, NvmlReader, ProcessTarget
from quanttui.core.hardware.nvml import NO_GPU_MEMORY

GiB = 1024**3


def test_library_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    uninstall(monkeypatch)
    reader = NvmlReader()
    s = reader.sample([1234])
    assert isinstance(s.gpus, NA)
    assert "not installed" in s.gpus.reason
    assert s.process_vram[1234] == s.gpus
    assert reader.available == s.gpus
    reader.close()


def test_init_fails_without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeNvml([FakeGpu()], init_error="Driver Not Loaded"))
    reader = NvmlReader()
    for _ in range(3):
        s = reader.sample([1])
        assert isinstance(s.gpus, NA)
        assert "driver" in s.gpus.reason.lower()
        assert "Driver Not Loaded" in s.gpus.reason
    assert fake.count("nvmlInit") == 1  # tried once, not every tick
    reader.close()
    assert fake.count("nvmlShutdown") == 0  # nothing to shut down


def test_zero_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeNvml([]))
    reader = NvmlReader()
    s = reader.sample([42])
    assert s.gpus == NA("NVML found no GPU")
    assert s.process_vram[42] == NA("NVML found no GPU")
    reader.close()
    assert fake.count("nvmlShutdown") == 1


def test_lazy_init_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = install(monkeypatch, FakeNvml([FakeGpu()]))
    reader = NvmlReader()
    assert fake.count("nvmlInit") == 0  # nothing happens before the first sample
    for _ in range(5):
        reader.sample()
    assert fake.count("nvmlInit") == 1
    assert fake.count("nvmlDeviceGetName") == 1  # static: asked once
    reader.close()
    reader.close()
    assert fake.count("nvmlShutdown") == 1
    after = reader.sample([1])
    assert isinstance(after.gpus, NA)


def test_one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeNvml([FakeGpu(name=b"NVIDIA Bytes", compute=[(77, 2 * GiB)])]))
    reader = NvmlReader()
    s = reader.sample([77])
    assert not isinstance(s.gpus, NA)
    (gpu,) = s.gpus
    assert gpu.index == 0
    assert gpu.name == "NVIDIA Bytes"  # bytes from old pynvml decoded
    assert gpu.util_percent == 37.0
    assert gpu.memory_used_bytes == 3 * GiB
    assert gpu.memory_total_bytes == 24 * GiB
    assert gpu.temperature_c == 55.0
    assert gpu.power_w == pytest.approx(123.456)
    assert s.process_vram == {77: 2 * GiB}
    assert s.driver_version == "555.42.06"
    reader.close()


def test_two_gpus_process_memory_summed_and_deduplicated(monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = [
        # pid 10 has compute and graphics contexts on GPU 0: count it once
        FakeGpu(name="A", compute=[(10, 1 * GiB), (20, 5 * GiB)], graphics=[(10, 1 * GiB)]),
        FakeGpu(name="B", compute=[(10, 2 * GiB)]),
    ]
    install(monkeypatch, FakeNvml(gpus))
    reader = NvmlReader()
    s = reader.sample([10, 20, 30])
    assert not isinstance(s.gpus, NA)
    assert [g.name for g in s.gpus] == ["A", "B"]
    assert [g.index for g in s.gpus] == [0, 1]
    assert s.process_vram[10] == 3 * GiB  # split over both GPUs
    assert s.process_vram[20] == 5 * GiB
    assert s.process_vram[30] == NA(NO_GPU_MEMORY)  # others match, so no container hint
    reader.close()


def test_pid_not_found_notes_container_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeNvml([FakeGpu(compute=[(99999, GiB)])]))
    reader = NvmlReader()
    vram = reader.sample([os.getpid()]).process_vram[os.getpid()]
    assert isinstance(vram, NA)
    assert vram.reason.startswith(NO_GPU_MEMORY)
    assert "container" in vram.reason
    reader.close()


def test_pid_not_found_no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeNvml([FakeGpu()]))
    reader = NvmlReader()
    assert reader.sample([5]).process_vram[5] == NA(NO_GPU_MEMORY)
    reader.close()


def test_process_memory_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeNvml([FakeGpu(compute=[(5, None)])]))
    reader = NvmlReader()
    vram = reader.sample([5]).process_vram[5]
    assert isinstance(vram, NA)
    assert "does not report" in vram.reason
    reader.close()


def test_every_call_raising_degrades_each_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeNvml([FakeGpu(), FakeGpu()], fail=["*"]))
    reader = NvmlReader()
    s = reader.sample([5])
    # Counting GPUs fails, so there's no GPU list at all, with NVML's text as the reason.
    assert isinstance(s.gpus, NA)
    assert "Fake failure in nvmlDeviceGetCount" in s.gpus.reason
    assert isinstance(s.process_vram[5], NA)
    reader.close()


def test_each_figure_raising_after_init(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([FakeGpu(compute=[(5, GiB)])])
    install(monkeypatch, fake)
    reader = NvmlReader()
    assert reader.sample([5]).process_vram[5] == GiB
    fake.fail.add("*")  # the GPU falls off the bus mid-run
    for _ in range(2):
        s = reader.sample([5])
        assert not isinstance(s.gpus, NA)
        (gpu,) = s.gpus
        assert gpu.name == "NVIDIA Fake 24GB"  # cached from before
        for figure in (gpu.util_percent, gpu.memory_used_bytes, gpu.temperature_c, gpu.power_w):
            assert isinstance(figure, NA)
            assert figure.reason.startswith("NVML: Fake failure")
        vram = s.process_vram[5]
        assert isinstance(vram, NA)
        assert "cannot list GPU processes" in vram.reason
    fake.fail.clear()  # and comes back
    assert reader.sample([5]).process_vram[5] == GiB
    reader.close()


def test_one_handle_failing(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([FakeGpu(name="ok")])
    install(monkeypatch, fake)
    fake.gpus.append(FakeGpu())
    # One more than exists: its handle raises.
    monkeypatch.setattr(fake.module, "nvmlDeviceGetCount", lambda: 3)
    reader = NvmlReader()
    s = reader.sample()
    assert not isinstance(s.gpus, NA)
    assert s.gpus[0].name == "ok"
    assert isinstance(s.gpus[2].name, NA)
    assert isinstance(s.gpus[2].memory_used_bytes, NA)
    reader.close()


SCENARIOS = {
    "missing": None,
    "no-driver": FakeNvml([FakeGpu()], init_error="Driver Not Loaded"),
    "zero": FakeNvml([]),
    "one": FakeNvml([FakeGpu()]),
    "two": FakeNvml([FakeGpu(), FakeGpu()]),
    "all-raise": FakeNvml([FakeGpu()], fail=["*"]),
    "figures-raise": FakeNvml(
        [FakeGpu()],
        fail=["nvmlDeviceGetMemoryInfo", "nvmlDeviceGetComputeRunningProcesses"],
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_poller_keeps_sampling(monkeypatch: pytest.MonkeyPatch, scenario: str) -> None:
    fake = SCENARIOS[scenario]
    if fake is None:
        uninstall(monkeypatch)
    else:
        install(monkeypatch, fake)
    got: list[HwSample] = []
    enough = threading.Event()

    def collect(sample: HwSample) -> None:
        got.append(sample)
        if len(got) >= 3:
            enough.set()

    poller = HardwarePoller([ProcessTarget("me", pid=os.getpid())], interval_s=0.02)
    poller.subscribe(collect)
    poller.start()
    try:
        assert enough.wait(5), "poller stopped sampling"
    finally:
        poller.close()
    assert not poller.running
    me = got[-1].process("me")
    assert me is not None
    assert me.pid == os.getpid()
    assert me.rss_bytes != 0 and not isinstance(me.rss_bytes, NA)
    if scenario in ("one", "two", "figures-raise"):
        assert not isinstance(got[-1].gpus, NA)
    else:
        assert isinstance(got[-1].gpus, NA)
    assert isinstance(me.vram_bytes, NA)  # this test process holds no GPU memory
