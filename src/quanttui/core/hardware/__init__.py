"""Hardware sampling: host (psutil), server processes (psutil), GPUs (NVML), remote exporters.

What can't be read is `NA(reason)`, never 0 and never an exception. The HTTP parsers live in
`quanttui.core.hardware.remote` and are not re-exported here, so importing this package doesn't
pull in httpx or prometheus_client.
"""

from quanttui.core.hardware.host import HostInfo, HostSample, HostSampler, read_host_info
from quanttui.core.hardware.nvml import GpuSample, NvmlReader, NvmlSample
from quanttui.core.hardware.poller import HardwarePoller, HwSample
from quanttui.core.hardware.process import (
    ModelPages,
    ProcessSample,
    ProcessSampler,
    ProcessTarget,
    ServerFlags,
    find_listening_pid,
    local_addresses,
    parse_server_flags,
)
from quanttui.core.hardware.reading import (
    NA,
    Reading,
    format_bytes,
    is_na,
    map_reading,
    peak,
    value_or,
)

__all__ = [
    "NA",
    "GpuSample",
    "HardwarePoller",
    "HostInfo",
    "HostSample",
    "HostSampler",
    "HwSample",
    "ModelPages",
    "NvmlReader",
    "NvmlSample",
    "ProcessSample",
    "ProcessSampler",
    "ProcessTarget",
    "Reading",
    "ServerFlags",
    "find_listening_pid",
    "format_bytes",
    "is_na",
    "local_addresses",
    "map_reading",
    "parse_server_flags",
    "peak",
    "read_host_info",
    "value_or",
]
