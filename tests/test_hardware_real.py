"""Memory attribution with real llama-server processes."""

from __future__ import annotations

import pytest

from quanttui.core.hardware import HardwarePoller, ModelPages, ProcessTarget
from quanttui.core.hardware.reading import NA
from quanttui.core.hardware.summary import hardware_json
from quanttui.core.models.servers import ManagedServer

pytestmark = pytest.mark.real


def test_rss_is_attributed_to_the_right_server(real_pair: tuple[ManagedServer, ...]) -> None:
    q4, q8 = real_pair
    # found by port (as for a server quanttui did not start), and by PID
    targets = [ProcessTarget("q4-by-port", url=q4.url), ProcessTarget("q8-by-port", url=q8.url),
               ProcessTarget("q8-by-pid", pid=q8.pid)]
    with HardwarePoller(targets, interval_s=0.2, gpu=False) as poller:
        poller.sample_once()
        s = poller.sample_once()
        p4, p8, p8pid = (s.process(t.name) for t in targets)
        assert p4 is not None and p8 is not None and p8pid is not None
        assert p4.pid == q4.pid and p8.pid == q8.pid and p8pid.pid == q8.pid
        assert not isinstance(p4.rss_bytes, NA) and not isinstance(p8.rss_bytes, NA)
        # the weights are mmap'd and were touched by the warm-up: RSS follows the model size
        size4 = q4.spec.model.stat().st_size
        size8 = q8.spec.model.stat().st_size
        assert size8 > size4
        assert p8.rss_bytes > p4.rss_bytes
        assert p4.rss_bytes > 0.5 * size4 and p8.rss_bytes > 0.5 * size8
        assert not isinstance(p4.flags, NA) and p4.flags.threads == 1 and p4.flags.ctx_size == 2048
        # the mapped GGUF is found, its resident pages are at most the file, and the KV cache
        # and buffers are private
        for p, srv, size in ((p4, q4, size4), (p8, q8, size8)):
            assert isinstance(p.model, ModelPages) and p.model.file_bytes == size
            assert p.model.paths == (str(srv.spec.model),)
            assert 0.3 * size < p.model.resident_bytes <= size
            assert isinstance(p.private_bytes, int) and isinstance(p.rss_bytes, int)
            assert 0 < p.private_bytes < p.rss_bytes
        hw = hardware_json(poller.history(), poller.host_info(),
                           [("q4-by-port", str(q4.spec.model)), ("q8-by-port", str(q8.spec.model))])
    assert hw["servers"]["q8-by-port"]["model_file"] == size8
    assert hw["servers"]["q4-by-port"]["model_file"] == size4
    assert hw["servers"]["q8-by-port"]["rss_peak"] > hw["servers"]["q4-by-port"]["rss_peak"]
    q8_json = hw["servers"]["q8-by-port"]
    assert 0.3 * size8 < q8_json["model_pages_peak"] <= size8 and q8_json["private_peak"] > 0
    assert isinstance(q8_json["shared_model_file"], bool)  # other servers may map the demo file
    # the same process watched twice is not another process mapping the file
    assert "q8-by-pid" not in q8_json["model_shared_with"]
    assert hw["gpus"] == {"n/a": "GPU sampling is off"}
