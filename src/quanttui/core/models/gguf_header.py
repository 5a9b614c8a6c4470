"""What a GGUF file's header says (`GGUFHeader`), and the error for a file that isn't one.

Reading is `gguf_reader.read_gguf_header`; this module costs nothing to import (no numpy, no
`gguf`), so discovery and the fit check can name these types without loading the reader.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

__all__ = [
    "ArrayInfo",
    "GGUFError",
    "GGUFHeader",
    "MetaValue",
    "ggml_type_name",
    "os_reason",
]


class GGUFError(Exception):
    """A file that could not be read as a GGUF model; `reason` says why, in words."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array, not decoded: its element type (a `gguf.GGUFValueType` value) and length."""

    item_type: int
    length: int


MetaValue: TypeAlias = int | float | bool | str | ArrayInfo


@dataclass(frozen=True)
class GGUFHeader:
    """What one GGUF file says about itself. Tensor fields are None when tensors were not read."""

    path: Path
    file_size: int
    version: int
    big_endian: bool
    tensor_count: int
    metadata: Mapping[str, MetaValue]
    n_params: int | None = None  # sum of the tensors' element counts
    tensor_types: Mapping[str, int] | None = None  # GGML type name -> elements of that type
    data_offset: int | None = None  # where tensor data starts
    data_end: int | None = None  # where the last tensor's data ends (None: unknown type seen)

    def get_str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def get_int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value

    def array_length(self, key: str) -> int | None:
        value = self.metadata.get(key)
        return value.length if isinstance(value, ArrayInfo) else None


def ggml_type_name(raw: int) -> str:
    """`gguf.GGMLQuantizationType` name for a tensor type id ("Q4_K"), or "type_<n>"."""
    from gguf import GGMLQuantizationType  # imports numpy: only when a name is asked for

    try:
        return GGMLQuantizationType(raw).name
    except ValueError:
        return f"type_{raw}"


def os_reason(e: OSError) -> str:
    """An OSError in words, for a problem list ("permission denied", "symlink loop", ...)."""
    if e.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(e, FileNotFoundError):
        return "no such file"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"cannot read: {e.strerror or e}"
