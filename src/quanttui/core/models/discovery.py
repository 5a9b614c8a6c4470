"""GGUF model discovery: find GGUF files in the usual places and say what each one is.

`discover()` walks the given directories and, unless told not to, the places where GGUF files
usually live (see `default_model_dirs`). It follows symlinks (the Hugging Face cache is made of
them) but visits each real directory once, so symlink loops end; it lists each real file once;
it shows a split model (`name-00001-of-00003.gguf`, ...) as one model. Every file it cannot use
(not GGUF, truncated, empty, unreadable, a split model with shards missing) is returned as a
`ModelProblem` with a reason; nothing raises out of `discover()`.

Headers are read by `core.models.gguf_reader` (metadata and tensor infos, never tensor data;
imported when a file is read) and cached in memory by real path, size and mtime, so a second
scan only stats the files.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from quanttui.core.hardware.reading import format_bytes
from quanttui.core.models.gguf_header import GGUFError, GGUFHeader, os_reason

__all__ = [
    "DiscoveryResult",
    "GGUFError",
    "ModelInfo",
    "ModelProblem",
    "clear_cache",
    "default_model_dirs",
    "discover",
    "format_table",
    "human_params",
    "human_size",
    "quant_name",
    "read_gguf_info",
    "to_json",
]

# llama.cpp's split naming (gguf-split, convert_hf_to_gguf --split-max-*): name-00001-of-00003.gguf
SHARD_RE = re.compile(r"^(?P<base>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})(?P<ext>\.gguf)$", re.I)

# Written by `quanttui demo --prepare` (llama-quantize --override-kv) into each file it makes
# from an already quantized source; llama-quantize itself records nothing of the kind.
REQUANTIZED_KEY = "quanttui.requantized_from"
# How every face says it: the words where there is room, the mark (explained beside it) where not.
REQUANTIZED_MARK = "‡"


def requantized_words(source: str) -> str:
    return f"requantized from {source}"


def requantized_legend(sources: Iterable[str | None]) -> str:
    """The mark's legend: "‡ requantized from Q4_K_M: made from an already quantized file…"."""
    names = ", ".join(sorted({s for s in sources if s}))
    return (f"{REQUANTIZED_MARK} {requantized_words(names)}: made from an already quantized "
            "file, so no more accurate than it")


# Why a file's bits per weight exceed its type's ("IQ4_NL - 4.5 bpw" beside bits/w 7.55).
BITS_PER_WEIGHT_NOTE = ("the file's size × 8 / parameters, above the type's nominal bits per "
                        "weight as some tensors are kept at higher precision (the token "
                        "embeddings and output: a large share of a small model) and the file "
                        "holds the tokenizer too")

_CACHE_MAX = 4096
READ_THREADS = min(4, os.cpu_count() or 1)


@dataclass(frozen=True)
class ModelInfo:
    """One model: a GGUF file, or all the shards of a split one.

    `quant` is named after `general.file_type` (gguf.LlamaFileType: "Q4_K_M", "F16", ...); when
    the file has no file type, it is the tensor type that holds most weights ("Q4_K") and
    `file_type` is None. `n_params` is counted from the tensor infos of every shard (all tensors,
    norms and embeddings included); `size_label` is the file's own `general.size_label` ("270M").
    """

    path: Path  # what to give llama-server's -m: the file, or the first shard
    shards: tuple[Path, ...]  # every file of the model, in order; (path,) when not split
    size_bytes: int  # on disk, all shards
    architecture: str | None  # general.architecture
    name: str | None  # general.name
    quant: str | None
    file_type: int | None  # general.file_type, raw
    size_label: str | None  # general.size_label
    n_params: int | None
    context_length: int | None  # {arch}.context_length: what it was trained for
    vocab_size: int | None  # length of tokenizer.ggml.tokens
    # The quant this file was made from when that was itself quantized (REQUANTIZED_KEY, or a
    # "requant" file name): such a file can't be more accurate than its source.
    requantized_from: str | None = None

    @property
    def bits_per_weight(self) -> float | None:
        """File size in bits over the parameter count (metadata included: a hair high)."""
        return self.size_bytes * 8 / self.n_params if self.n_params else None

    @property
    def display_name(self) -> str:
        """`general.name`, else the file name without `.gguf` and shard suffix."""
        if self.name:
            return self.name
        m = SHARD_RE.match(self.path.name)
        if m:
            return m["base"]
        return self.path.name[:-5] if self.path.name.lower().endswith(".gguf") else self.path.name

    @property
    def params_label(self) -> str | None:
        """The size label if the file has one, else the counted parameters ("268M")."""
        if self.size_label:
            return self.size_label
        return human_params(self.n_params) if self.n_params else None

    @property
    def is_split(self) -> bool:
        return len(self.shards) > 1


@dataclass(frozen=True)
class ModelProblem:
    """A file (or directory) that discovery could not use, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class DiscoveryResult:
    models: tuple[ModelInfo, ...]  # sorted by name, then size
    problems: tuple[ModelProblem, ...]  # sorted by path
    searched: tuple[Path, ...] = ()  # the directories that existed and were walked


# -- where models live ---------------------------------------------------------------------------


def default_model_dirs() -> list[Path]:
    """The usual places for GGUF files, whether or not they exist, in search order.

    ~/models; llama.cpp's cache (`LLAMA_CACHE`, else the platform cache dir, e.g.
    ~/.cache/llama.cpp); the Hugging Face hub cache (`HF_HUB_CACHE`, else `HF_HOME`/hub, else
    ~/.cache/huggingface/hub); LM Studio (~/.lmstudio/models, ~/.cache/lm-studio/models); and
    quanttui's own download cache (the platform cache dir for "quanttui", /models).
    """
    home = Path.home()
    llama_cache = os.environ.get("LLAMA_CACHE")
    places = [
        home / "models",
        Path(llama_cache).expanduser()
        if llama_cache
        # what llama.cpp uses: ~/.cache/llama.cpp, ~/Library/Caches/llama.cpp, %LOCALAPPDATA%
        else Path(user_cache_dir("llama.cpp", appauthor=False, opinion=False)),
        _hf_hub_cache(home),
        home / ".lmstudio" / "models",
        home / ".cache" / "lm-studio" / "models",
        Path(user_cache_dir("quanttui")) / "models",
    ]
    return _unique(places)


def _hf_hub_cache(home: Path) -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(var)
        if value:
            return Path(value).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(hf_home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg).expanduser() if xdg else home / ".cache"
    return cache / "huggingface" / "hub"


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: set[str] = set()
    out: list[Path] = []
    for p in paths:
        key = os.path.normcase(os.path.abspath(p))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# -- reading one model ---------------------------------------------------------------------------

_cache: dict[str, tuple[tuple[int, ...], GGUFHeader | GGUFError]] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Forget the headers read so far (the next scan reads every file again)."""
    with _cache_lock:
        _cache.clear()


def _read_header(path: Path) -> GGUFHeader:
    """`read_gguf_header`, remembered per real path while size, mtime and inode stay the same."""
    try:
        st = os.stat(path)
    except OSError as e:
        reason = os_reason(e)
        if isinstance(e, FileNotFoundError) and os.path.islink(path):
            reason = "broken symlink"
        raise GGUFError(path, reason) from None
    if not stat.S_ISREG(st.st_mode):
        raise GGUFError(path, "not a regular file")
    key = os.path.realpath(path)
    sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == sig:
        result = hit[1]
    else:
        try:
            from quanttui.core.models.gguf_reader import read_gguf_header

            result = read_gguf_header(path)
        except GGUFError as e:
            result = e
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                del _cache[next(iter(_cache))]
            _cache[key] = (sig, result)
    if isinstance(result, GGUFError):
        raise GGUFError(path, result.reason)
    return result


def read_gguf_info(path: Path | str) -> ModelInfo:
    """Describe the model in one GGUF file; raises `GGUFError(path, reason)` if it can't.

    Given the first shard of a split model, it reads all shards (they must all be there);
    given another shard, it says which file to open instead.
    """
    p = Path(os.path.abspath(Path(path).expanduser()))
    m = _shard_match(p)
    if m is None:
        return _read_model(p, (p,))
    no, count = int(m["no"]), int(m["count"])
    shards = _shard_paths(p, m)
    if no != 1:
        raise GGUFError(p, f"shard {no} of {count} of a split model; open {shards[0].name}")
    missing = [s for s in shards if not os.path.exists(s)]
    if missing:
        raise GGUFError(p, _missing_reason(missing, count))
    return _read_model(p, shards)


def _shard_match(p: Path) -> re.Match[str] | None:
    m = SHARD_RE.match(p.name)
    if m is None or not 1 <= int(m["no"]) <= int(m["count"]):
        return None
    return m


def _shard_paths(p: Path, m: re.Match[str]) -> tuple[Path, ...]:
    count = int(m["count"])
    base, ext = m["base"], m["ext"]
    return tuple(p.with_name(f"{base}-{i:05d}-of-{count:05d}{ext}") for i in range(1, count + 1))


def shard_files(path: Path) -> tuple[Path, ...]:
    """All files of a split model (`x-00001-of-00003.gguf` → the three), or just `path`."""
    m = _shard_match(path)
    return _shard_paths(path, m) if m is not None else (path,)


def _missing_reason(missing: Sequence[Path], count: int) -> str:
    numbers = [int(m["no"]) for s in missing if (m := SHARD_RE.match(s.name))]
    which = ", ".join(str(n) for n in numbers[:8]) + (", ..." if len(numbers) > 8 else "")
    plural = "s" if len(missing) > 1 else ""
    return f"split model: missing shard{plural} {which} of {count} ({missing[0].name}...)"


def _read_model(path: Path, shards: tuple[Path, ...]) -> ModelInfo:
    headers: list[GGUFHeader] = []
    for i, shard in enumerate(shards):
        try:
            headers.append(_read_header(shard))
        except GGUFError as e:
            if len(shards) == 1:
                raise GGUFError(path, e.reason) from None
            raise GGUFError(path, f"shard {i + 1} of {len(shards)}: {e.reason}") from None
    first = headers[0]
    if len(shards) > 1:
        declared = first.get_int("split.count")
        if declared is not None and declared != len(shards):
            raise GGUFError(path, f"split.count is {declared}, file names say {len(shards)}")
    arch = first.get_str("general.architecture")
    file_type = first.get_int("general.file_type")
    from gguf import LlamaFileType  # loaded with the reader already

    if file_type == LlamaFileType.GUESSED:
        file_type = None
    types: dict[str, int] = {}
    n_params: int | None = 0
    for h in headers:
        if h.n_params is None or h.tensor_types is None or n_params is None:
            n_params = None
            continue
        n_params += h.n_params
        for t, n in h.tensor_types.items():
            types[t] = types.get(t, 0) + n
    vocab = first.array_length("tokenizer.ggml.tokens")
    if vocab is None and arch:
        vocab = first.get_int(f"{arch}.vocab_size")
    return ModelInfo(
        path=path,
        shards=shards,
        size_bytes=sum(h.file_size for h in headers),
        architecture=arch,
        name=first.get_str("general.name") or None,
        quant=quant_name(file_type, types),
        file_type=file_type,
        size_label=first.get_str("general.size_label") or None,
        n_params=n_params or None,
        context_length=first.get_int(f"{arch}.context_length") if arch else None,
        vocab_size=vocab,
        requantized_from=first.get_str(REQUANTIZED_KEY) or (
            "a quantized file" if "requant" in path.name.lower() else None),
    )


def requantized_source(path: str | Path) -> str | None:
    """What a local model file says it was requantized from (None: not, or not a readable
    local file: a remote server's path is not read)."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return read_gguf_info(p).requantized_from
    except GGUFError:
        return None


def quant_name(file_type: int | None, tensor_types: Mapping[str, int] | None = None) -> str | None:
    """Quant name for a general.file_type: 15 -> "Q4_K_M" (gguf.LlamaFileType, no MOSTLY_).

    Without a file type: the tensor type holding most elements ("Q4_K"), or None.
    """
    if file_type is not None:
        from gguf import LlamaFileType  # imports numpy: only when a file type is named

        try:
            name = LlamaFileType(file_type).name
        except ValueError:
            return f"file_type {file_type}"
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    if tensor_types:
        return max(tensor_types.items(), key=lambda kv: kv[1])[0]
    return None


# -- discovery -----------------------------------------------------------------------------------


def discover(dirs: Sequence[Path | str], include_default_places: bool = True) -> DiscoveryResult:
    """Find the GGUF models in `dirs` (directories, or .gguf files) and the default places.

    Given paths that don't exist are problems; default places that don't exist are skipped
    silently. Never raises for anything found on disk.
    """
    problems: list[ModelProblem] = []
    files: list[Path] = []
    roots: list[Path] = []
    for d in dirs:
        p = Path(os.path.abspath(Path(d).expanduser()))
        if _is_dir(p):
            roots.append(p)
        elif os.path.lexists(p):
            files.append(p)
        else:
            problems.append(ModelProblem(p, "no such directory"))
    if include_default_places:
        roots.extend(Path(os.path.abspath(d)) for d in default_model_dirs() if _is_dir(d))
    roots = _unique(roots)

    visited: set[tuple[int, int]] = set()
    for root in roots:
        _walk(root, visited, files, problems)

    models: list[ModelInfo] = []
    units = _units(files)
    # Headers are read on a few threads: a cold read waits on the disk, and the vocabulary
    # skipping runs in numpy, which lets go of the GIL.
    workers = min(READ_THREADS, len(units))
    if workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="quanttui-discover") as pool:
            outcomes = list(pool.map(_try_unit, units))
    else:
        outcomes = [_try_unit(u) for u in units]
    for outcome in outcomes:
        if isinstance(outcome, ModelInfo):
            models.append(outcome)
        else:
            problems.append(outcome)
    models.sort(key=lambda m: (m.display_name.casefold(), m.size_bytes, str(m.path)))
    problems.sort(key=lambda p: (str(p.path), p.reason))
    return DiscoveryResult(tuple(models), tuple(problems), tuple(roots))


def _is_dir(p: Path) -> bool:
    try:
        return p.is_dir()
    except OSError:  # e.g. a parent we may not search
        return False


def _walk(
    root: Path, visited: set[tuple[int, int]], files: list[Path], problems: list[ModelProblem]
) -> None:
    """Depth-first, sorted, following symlinks; each real directory once (by device, inode)."""
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in visited:
                continue  # seen already: a symlink loop, or two ways to one directory
            visited.add((st.st_dev, st.st_ino))
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            problems.append(ModelProblem(Path(d), f"directory skipped: {os_reason(e)}"))
            continue
        subdirs: list[str] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False  # a symlink loop; if it is named *.gguf, it is reported below
            if is_dir:
                subdirs.append(entry.path)
            elif entry.name.lower().endswith(".gguf"):
                files.append(Path(entry.path))
        stack.extend(reversed(subdirs))


def _units(files: list[Path]) -> list[tuple[Path, tuple[Path, ...]]]:
    """Group files into models (a file, or a split model's shards), one per set of real files.

    Where the same real files are reachable by several paths, the one without symlinks wins,
    then the first found (given directories come before the default places).
    """
    units: dict[tuple[str, ...], tuple[Path, tuple[Path, ...]]] = {}
    for p in files:
        m = _shard_match(p)
        if m is None:
            units.setdefault(("file", str(p)), (p, (p,)))
            continue
        shards = _shard_paths(p, m)
        key = ("split", *map(str, shards))
        if key not in units:
            present = [s for s in shards if os.path.lexists(s)]
            units[key] = (present[0] if present else p, shards)

    best: dict[tuple[str, ...], tuple[tuple[bool, int], Path, tuple[Path, ...]]] = {}
    for order, (path, shards) in enumerate(units.values()):
        identity = tuple(os.path.realpath(s) for s in shards)
        rank = (os.path.realpath(path) != str(path), order)
        if identity not in best or rank < best[identity][0]:
            best[identity] = (rank, path, shards)
    return [(path, shards) for _, path, shards in best.values()]


def _try_unit(unit: tuple[Path, tuple[Path, ...]]) -> ModelInfo | ModelProblem:
    path, shards = unit
    try:
        return _read_unit(path, shards)
    except GGUFError as e:
        return ModelProblem(path, e.reason)
    except Exception as e:  # a bug here must not cost the user the whole list
        return ModelProblem(path, f"unexpected error: {type(e).__name__}: {e}")


def _read_unit(path: Path, shards: tuple[Path, ...]) -> ModelInfo:
    if len(shards) == 1:
        return _read_model(path, shards)
    missing = [s for s in shards if not os.path.exists(s)]
    if missing:
        raise GGUFError(path, _missing_reason(missing, len(shards)))
    return _read_model(shards[0], shards)


# -- output --------------------------------------------------------------------------------------


def human_size(n: int) -> str:
    """253_104_000 -> "253 MB": decimal units, as every face shows sizes (docs/metrics.md)."""
    return format_bytes(n)


def human_params(n: int) -> str:
    """268_098_176 -> "268M", 7_241_732_096 -> "7.24B"."""
    for scale, unit in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def _short_path(p: Path) -> str:
    home = str(Path.home())
    s = str(p)
    if home not in ("", os.sep) and s.startswith(home + os.sep):
        return "~" + s[len(home) :]
    return s


def _ellipsize(s: str, width: int) -> str:
    return s if len(s) <= width else s[: width - 1] + "…"


_HEADERS = ("NAME", "ARCH", "PARAMS", "QUANT", "CTX", "VOCAB", "SIZE", "PATH")
_RIGHT = {"PARAMS", "CTX", "VOCAB", "SIZE"}


def format_table(result: DiscoveryResult) -> str:
    """Plain-text table for `quanttui models`: one line per model, then the problems."""
    lines: list[str] = []
    if result.models:
        rows = [_HEADERS]
        for m in result.models:
            where = _short_path(m.path)
            if m.is_split:
                where += f" (+{len(m.shards) - 1} shards)"
            rows.append(
                (
                    _ellipsize(m.display_name, 40),
                    m.architecture or "?",
                    m.params_label or "?",
                    (m.quant or "?") + (f" {REQUANTIZED_MARK}" if m.requantized_from else ""),
                    "?" if m.context_length is None else str(m.context_length),
                    "?" if m.vocab_size is None else str(m.vocab_size),
                    human_size(m.size_bytes),
                    where,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADERS))]
        for r in rows:
            cells = [
                cell.rjust(w) if h in _RIGHT else cell.ljust(w)
                for cell, w, h in zip(r[:-1], widths[:-1], _HEADERS[:-1], strict=True)
            ]
            lines.append("  ".join([*cells, r[-1]]))
        if any(m.requantized_from for m in result.models):
            lines.append(requantized_legend(m.requantized_from for m in result.models))
    else:
        where = ", ".join(_short_path(p) for p in result.searched) or "nowhere"
        lines.append(f"No GGUF models found (searched: {where}).")
    if result.problems:
        lines.append("")
        lines.append(f"Problems ({len(result.problems)}):")
        lines.extend(f"  {_short_path(p.path)}: {p.reason}" for p in result.problems)
    return "\n".join(lines) + "\n"


def to_json(result: DiscoveryResult) -> dict[str, Any]:
    """The result as JSON-ready data for `quanttui models --json`."""
    return {
        "models": [
            {
                "path": str(m.path),
                "shards": [str(s) for s in m.shards],
                "name": m.name,
                "display_name": m.display_name,
                "architecture": m.architecture,
                "quant": m.quant,
                "file_type": m.file_type,
                "size_label": m.size_label,
                "n_params": m.n_params,
                "context_length": m.context_length,
                "vocab_size": m.vocab_size,
                "size_bytes": m.size_bytes,
                "requantized_from": m.requantized_from,
            }
            for m in result.models
        ],
        "problems": [{"path": str(p.path), "reason": p.reason} for p in result.problems],
        "searched": [str(p) for p in result.searched],
    }
