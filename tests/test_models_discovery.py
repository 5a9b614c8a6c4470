"""GGUF discovery and header reading, on real GGUF files written with gguf.GGUFWriter."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFEndian, LlamaFileType
from hypothesis import given, settings
from hypothesis import strategies as st
from platformdirs import user_cache_dir

from quanttui.core.models import discovery as models
from quanttui.core.models import gguf_reader
from quanttui.core.models.discovery import (
    DiscoveryResult,
    ModelInfo,
    ModelProblem,
    default_model_dirs,
    discover,
    format_table,
    read_gguf_info,
    to_json,
)
from quanttui.core.models.gguf_header import ArrayInfo, GGUFError
from quanttui.core.models.gguf_reader import read_gguf_header


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    models.clear_cache()


def write_gguf(
    path: Path,
    *,
    arch: str = "llama",
    name: str | None = "Tiny Llama",
    file_type: int | None = LlamaFileType.MOSTLY_Q4_K_M,
    context_length: int = 4096,
    tokens: Sequence[str] | None = None,
    size_label: str | None = "1M",
    split_max_tensors: int = 0,
    n_tensors: int = 2,
    endianess: GGUFEndian = GGUFEndian.LITTLE,
    extra: Callable[[gguf.GGUFWriter], None] | None = None,
) -> Path:
    """A small but real GGUF: metadata like a converted model, a few tiny tensors.

    The file type goes after the tokenizer, where llama-quantize puts it.
    """
    w = gguf.GGUFWriter(path, arch, split_max_tensors=split_max_tensors, endianess=endianess)
    if name:
        w.add_name(name)
    if size_label:
        w.add_size_label(size_label)
    w.add_context_length(context_length)
    w.add_embedding_length(256)
    w.add_tokenizer_model("llama")
    toks = list(tokens) if tokens is not None else [f"<t{i}>" for i in range(300)]
    w.add_token_list(toks)
    w.add_token_scores([-float(i) for i in range(len(toks))])
    w.add_token_types([1] * len(toks))
    if extra:
        extra(w)
    if file_type is not None:
        w.add_file_type(file_type)
    w.add_quantization_version(2)
    # A Q4_K weight (2 rows of 256), an F32 norm, then more F16 tensors as asked.
    w.add_tensor(
        "blk.0.attn_q.weight", np.zeros((2, 144), np.uint8), raw_dtype=GGMLQuantizationType.Q4_K
    )
    w.add_tensor("blk.0.attn_norm.weight", np.ones(256, np.float32))
    for i in range(n_tensors - 2):
        w.add_tensor(f"blk.{i + 1}.ffn.weight", np.zeros((4, 8), np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def only_model(result: DiscoveryResult) -> ModelInfo:
    assert len(result.models) == 1, result
    return result.models[0]


def problem_for(result: DiscoveryResult, path: Path) -> str:
    reasons = [p.reason for p in result.problems if p.path == path]
    assert len(reasons) == 1, (path, result.problems)
    return reasons[0]


# -- reading one file ---------------------------------------------------------------------------


def test_read_info(tmp_path: Path) -> None:
    p = write_gguf(tmp_path / "tiny-Q4_K_M.gguf")
    info = read_gguf_info(p)
    assert info.path == p
    assert info.shards == (p,)
    assert info.size_bytes == p.stat().st_size
    assert info.architecture == "llama"
    assert info.name == "Tiny Llama"
    assert info.quant == "Q4_K_M"
    assert info.file_type == LlamaFileType.MOSTLY_Q4_K_M
    assert info.size_label == "1M"
    assert info.n_params == 2 * 256 + 256
    assert info.context_length == 4096
    assert info.vocab_size == 300
    assert info.params_label == "1M"
    assert info.display_name == "Tiny Llama"


@pytest.mark.parametrize(
    ("file_type", "quant"),
    [
        (LlamaFileType.ALL_F32, "F32"),
        (LlamaFileType.MOSTLY_F16, "F16"),
        (LlamaFileType.MOSTLY_BF16, "BF16"),
        (LlamaFileType.MOSTLY_Q8_0, "Q8_0"),
        (LlamaFileType.MOSTLY_Q2_K, "Q2_K"),
        (LlamaFileType.MOSTLY_Q5_K_S, "Q5_K_S"),
        (LlamaFileType.MOSTLY_IQ4_XS, "IQ4_XS"),
        (999, "file_type 999"),
    ],
)
def test_quant_names(tmp_path: Path, file_type: int, quant: str) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf", file_type=file_type))
    assert info.quant == quant
    assert info.file_type == file_type


def test_quant_from_tensors_without_file_type(tmp_path: Path) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf", file_type=None, name=None))
    assert info.file_type is None
    assert info.quant == "Q4_K"  # 512 Q4_K elements against 256 F32
    assert info.display_name == "m"


def test_params_label_counted_when_no_size_label(tmp_path: Path) -> None:
    info = read_gguf_info(write_gguf(tmp_path / "m.gguf", size_label=None, n_tensors=3))
    assert info.size_label is None
    assert info.n_params == 2 * 256 + 256 + 32
    assert info.params_label == "800"


def test_agrees_with_gguf_reader(tmp_path: Path) -> None:
    def extra(w: gguf.GGUFWriter) -> None:
        w.add_uint8("test.u8", 200)
        w.add_int8("test.i8", -5)
        w.add_uint16("test.u16", 60000)
        w.add_int16("test.i16", -30000)
        w.add_int32("test.i32", -7)
        w.add_uint64("test.u64", 2**40)
        w.add_int64("test.i64", -(2**40))
        w.add_float32("test.f32", 0.5)
        w.add_float64("test.f64", 1e-300)
        w.add_bool("test.bool", True)
        w.add_string("test.str", "héllo ▁ wörld")
        w.add_array("test.ints", [1, 2, 3])
        w.add_array("test.nested", [[1, 2], [3]])
        w.add_array("test.strs", ["a", "", "b" * 300])

    p = write_gguf(tmp_path / "m.gguf", extra=extra)
    mine = read_gguf_header(p)
    theirs = gguf.GGUFReader(p)
    keys = [k for k in theirs.fields if not k.startswith("GGUF.")]
    assert list(mine.metadata) == keys
    for key in keys:
        field = theirs.fields[key]
        value = mine.metadata[key]
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            assert isinstance(value, ArrayInfo)
            assert value.item_type == field.types[1]
            if value.item_type != gguf.GGUFValueType.ARRAY:  # GGUFReader flattens nested ones
                assert value.length == len(field.data)
            else:
                assert value.length == 2
        else:
            assert value == field.contents(), key
    assert mine.tensor_count == len(theirs.tensors)
    assert mine.n_params == sum(t.n_elements for t in theirs.tensors)
    assert mine.data_offset == theirs.data_offset
    assert mine.data_end == max(t.data_offset + t.n_bytes for t in theirs.tensors)


def test_big_vocab_with_awkward_tokens(tmp_path: Path) -> None:
    """Long (256+ byte), empty and NUL-containing tokens: the vectorised skip stays exact."""
    rng = np.random.default_rng(7)
    alphabet = ["a", "▁", "\x00", "é", "<", "0"]
    toks = []
    for i in range(20_000):
        if i % 997 == 0:
            toks.append("")
        elif i % 1009 == 0:
            toks.append("x" * int(rng.integers(256, 2000)))
        else:
            toks.append("".join(rng.choice(alphabet, size=int(rng.integers(1, 16)))))
    p = write_gguf(tmp_path / "big.gguf", tokens=toks, extra=lambda w: w.add_token_merges(toks))
    info = read_gguf_info(p)
    assert info.vocab_size == 20_000
    assert info.quant == "Q4_K_M"  # written after the tokens and merges
    header = read_gguf_header(p)
    assert header.metadata["tokenizer.ggml.merges"] == ArrayInfo(gguf.GGUFValueType.STRING, 20_000)
    assert header.get_int("general.quantization_version") == 2


def test_big_endian_file(tmp_path: Path) -> None:
    p = write_gguf(
        tmp_path / "be.gguf", endianess=GGUFEndian.BIG, tokens=[f"t{i}" for i in range(999)]
    )
    header = read_gguf_header(p)
    assert header.big_endian
    info = read_gguf_info(p)
    assert (info.architecture, info.quant, info.vocab_size) == ("llama", "Q4_K_M", 999)
    assert info.context_length == 4096


def _records(strings: list[bytes], endian: str) -> bytes:
    return b"".join(struct.pack(endian + "Q", len(s)) + s for s in strings)


@settings(max_examples=300, deadline=None)
@given(
    strings=st.lists(
        st.one_of(
            st.binary(max_size=24),
            st.binary(min_size=250, max_size=400),
            st.sampled_from([b"", b"\x00" * 9, b"\x01" + b"\x00" * 7, b"\x00" * 15 + b"\x02"]),
        ),
        max_size=120,
    ),
    tail=st.binary(max_size=64),
    big_endian=st.booleans(),
    chunk=st.sampled_from([16, 100, 1 << 18]),
)
def test_skip_strings_matches_a_plain_walk(
    strings: list[bytes], tail: bytes, big_endian: bool, chunk: int
) -> None:
    """The vectorised skip (forced on even for short arrays) lands where a plain walk does."""
    endian = ">" if big_endian else "<"
    data = b"GG" + _records(strings, endian) + tail
    expected = len(data) - len(tail)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gguf_reader, "_SLOW_SKIP_MAX", 0)
        mp.setattr(gguf_reader, "_CHUNK", chunk)  # small: many windows and refills
        parser = gguf_reader._Parser(io.BytesIO(data), len(data), Path("x"))
        if big_endian:
            parser.big_endian = True
            parser._set_endian(">")
        assert parser._skip_strings(2, len(strings)) == expected


def test_read_errors_for_each_truncation_point(tmp_path: Path) -> None:
    p = write_gguf(tmp_path / "m.gguf", tokens=[f"t{i}" for i in range(400)])
    data = p.read_bytes()
    cut = tmp_path / "cut.gguf"
    for n in [*range(0, 64), *range(64, len(data), 97), len(data) - 1]:
        cut.write_bytes(data[:n])
        with pytest.raises(GGUFError) as e:
            read_gguf_header(cut)
        assert e.value.reason.startswith(("truncated", "empty file")), (n, e.value.reason)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_headers_raise_gguf_error_only(
    tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    base = tmp_path_factory.getbasetemp() / "corrupt-src.gguf"
    if not base.exists():
        write_gguf(base, tokens=[f"t{i}" for i in range(300)])
    raw = bytearray(base.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(4, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    target = tmp_path_factory.getbasetemp() / "corrupt.gguf"
    target.write_bytes(bytes(raw))
    with contextlib.suppress(GGUFError):
        read_gguf_header(target)


# -- discovery ------------------------------------------------------------------------------------


def test_problem_files_listed_with_reasons(tmp_path: Path) -> None:
    good = write_gguf(tmp_path / "good.gguf")
    data = good.read_bytes()
    kv_cut = data.index(b"tokenizer.ggml.tokens") + 40  # inside the token list
    (tmp_path / "truncated.gguf").write_bytes(data[:kv_cut])
    (tmp_path / "no-weights.gguf").write_bytes(data[:-100])  # tensor data cut short
    (tmp_path / "readme.gguf").write_text("this is not a model\n")
    (tmp_path / "empty.gguf").write_bytes(b"")
    (tmp_path / "v1.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    (tmp_path / "notes.txt").write_text("ignored: not named .gguf")

    result = discover([tmp_path], include_default_places=False)

    assert [m.path for m in result.models] == [good]
    reasons = {p.path.name: p.reason for p in result.problems}
    assert reasons.keys() == {
        "truncated.gguf",
        "no-weights.gguf",
        "readme.gguf",
        "empty.gguf",
        "v1.gguf",
    }
    assert reasons["truncated.gguf"].startswith("truncated: metadata entry")
    assert "tokenizer.ggml.tokens" in reasons["truncated.gguf"]
    assert reasons["no-weights.gguf"].startswith("truncated: tensor data")
    assert reasons["readme.gguf"] == "not a GGUF file (starts with b'this')"
    assert reasons["empty.gguf"] == "empty file"
    assert reasons["v1.gguf"] == "unsupported GGUF version 1 (need 2 or 3)"
    with pytest.raises(GGUFError) as e:
        read_gguf_info(tmp_path / "readme.gguf")
    assert e.value.path == tmp_path / "readme.gguf"


def test_split_model_is_one_model(tmp_path: Path) -> None:
    write_gguf(tmp_path / "big.gguf", split_max_tensors=1, n_tensors=3, name="Big Split")
    shards = [tmp_path / f"big-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert all(s.exists() for s in shards)
    write_gguf(tmp_path / "small.gguf", name="Small")

    result = discover([tmp_path], include_default_places=False)

    assert result.problems == ()
    big = next(m for m in result.models if m.name == "Big Split")
    assert big.path == shards[0]
    assert big.shards == tuple(shards)
    assert big.is_split
    assert big.size_bytes == sum(s.stat().st_size for s in shards)
    assert big.n_params == 2 * 256 + 256 + 32  # tensors of all three shards
    assert big.quant == "Q4_K_M"
    assert read_gguf_info(shards[0]) == big
    with pytest.raises(
        GGUFError, match=r"shard 2 of 3 of a split model; open big-00001-of-00003\.gguf"
    ):
        read_gguf_info(shards[1])
    assert "(+2 shards)" in format_table(result)


def test_split_model_missing_shard(tmp_path: Path) -> None:
    write_gguf(tmp_path / "big.gguf", split_max_tensors=1, n_tensors=3)
    (tmp_path / "big-00002-of-00003.gguf").unlink()

    result = discover([tmp_path], include_default_places=False)

    assert result.models == ()
    first = tmp_path / "big-00001-of-00003.gguf"
    assert problem_for(result, first) == (
        "split model: missing shard 2 of 3 (big-00002-of-00003.gguf...)"
    )
    with pytest.raises(GGUFError, match="missing shard 2 of 3"):
        read_gguf_info(first)

    first.unlink()  # only shard 3 left: still one problem, about the missing ones
    result = discover([tmp_path], include_default_places=False)
    assert [p.reason for p in result.problems] == [
        "split model: missing shards 1, 2 of 3 (big-00001-of-00003.gguf...)"
    ]


def test_split_model_with_a_broken_shard(tmp_path: Path) -> None:
    write_gguf(tmp_path / "big.gguf", split_max_tensors=1, n_tensors=3)
    (tmp_path / "big-00003-of-00003.gguf").write_bytes(b"")
    result = discover([tmp_path], include_default_places=False)
    assert result.models == ()
    assert problem_for(result, tmp_path / "big-00001-of-00003.gguf") == "shard 3 of 3: empty file"


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_symlink_loop_and_duplicates(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    sub = models_dir / "sub"
    sub.mkdir(parents=True)
    real = write_gguf(sub / "tiny-Q4_K_M.gguf")
    (sub / "loop").symlink_to(models_dir)  # sub/loop/sub/loop/... forever
    (sub / "self").symlink_to(".")
    (models_dir / "alias.gguf").symlink_to(real)  # the same model twice
    (models_dir / "dangling.gguf").symlink_to(tmp_path / "gone.gguf")
    (models_dir / "a.gguf").symlink_to(models_dir / "b.gguf")  # a file symlink loop
    (models_dir / "b.gguf").symlink_to(models_dir / "a.gguf")

    result = discover([models_dir, sub, sub / "loop"], include_default_places=False)

    assert [m.path for m in result.models] == [real]  # the path without symlinks wins
    assert problem_for(result, models_dir / "dangling.gguf") == "broken symlink"
    assert problem_for(result, models_dir / "a.gguf") == "symlink loop"
    assert problem_for(result, models_dir / "b.gguf") == "symlink loop"
    assert len(result.problems) == 3


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks")
def test_hugging_face_cache_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """snapshots/<rev>/<file>.gguf are symlinks to blobs/<sha256> (no .gguf suffix)."""
    hub = tmp_path / "hf" / "hub"
    repo = hub / "models--ggml-org--gemma-3-270m-GGUF"
    (repo / "blobs").mkdir(parents=True)
    blob = write_gguf(repo / "blobs" / ("ab" * 32), arch="gemma3", name="Gemma 3 270m")
    for rev in ("1111", "2222"):  # two revisions sharing the blob: one model
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "gemma-3-270m-Q4_K_M.gguf").symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("2222")
    _isolate_home(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))

    result = discover([], include_default_places=True)

    info = only_model(result)
    assert info.path == repo / "snapshots" / "1111" / "gemma-3-270m-Q4_K_M.gguf"
    assert info.architecture == "gemma3"
    assert result.problems == ()
    assert hub in result.searched


def _isolate_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for var in (
        "XDG_CACHE_HOME",
        "LLAMA_CACHE",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_HOME",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.mark.skipif(sys.platform != "linux", reason="Linux cache layout")
def test_default_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _isolate_home(tmp_path, monkeypatch)
    assert default_model_dirs() == [
        home / "models",
        home / ".cache" / "llama.cpp",
        home / ".cache" / "huggingface" / "hub",
        home / ".lmstudio" / "models",
        home / ".cache" / "lm-studio" / "models",
        home / ".cache" / "quanttui" / "models",
    ]
    monkeypatch.setenv("LLAMA_CACHE", str(tmp_path / "llama-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    dirs = default_model_dirs()
    assert dirs[1] == tmp_path / "llama-cache"
    assert dirs[2] == tmp_path / "hf-home" / "hub"

    places = {
        "home": home / "models" / "deep" / "er",
        "llama": tmp_path / "llama-cache",
        "lmstudio": home / ".lmstudio" / "models" / "lmstudio-community" / "Repo-GGUF",
        "lmstudio-old": home / ".cache" / "lm-studio" / "models" / "x",
        "demo": home / ".cache" / "quanttui" / "models",
    }
    for label, d in places.items():
        d.mkdir(parents=True)
        write_gguf(d / f"{label}.gguf", name=label)
    extra = tmp_path / "extra"
    extra.mkdir()
    write_gguf(extra / "extra.gguf", name="extra")

    result = discover([extra, tmp_path / "missing"], include_default_places=True)

    assert sorted(m.name or "" for m in result.models) == sorted([*places, "extra"])
    assert result.problems == (ModelProblem(tmp_path / "missing", "no such directory"),)
    assert result.searched[0] == extra
    assert discover([extra], include_default_places=False).searched == (extra,)


def test_unreadable_directory_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated (the tests may run as root, where chmod 000 doesn't stop reads)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    write_gguf(locked / "hidden.gguf")
    secret = write_gguf(tmp_path / "secret.gguf")
    fine = write_gguf(tmp_path / "fine.gguf")

    real_scandir, real_open = os.scandir, open

    def scandir(path: Any) -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    def fake_open(path: Any, *args: Any, **kw: Any) -> Any:
        if Path(path) == secret:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(gguf_reader, "open", fake_open, raising=False)

    result = discover([tmp_path], include_default_places=False)

    assert [m.path for m in result.models] == [fine]
    assert problem_for(result, locked) == "directory skipped: permission denied"
    assert problem_for(result, secret) == "permission denied"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_fifo_named_gguf_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.gguf")
    result = discover([tmp_path], include_default_places=False)
    assert problem_for(result, tmp_path / "pipe.gguf") == "not a regular file"


def test_a_file_can_be_given_directly(tmp_path: Path) -> None:
    p = write_gguf(tmp_path / "m.gguf")
    assert only_model(discover([p], include_default_places=False)).path == p


def test_headers_are_cached_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = write_gguf(tmp_path / "m.gguf")
    calls: list[Path] = []
    real = gguf_reader.read_gguf_header

    def counting(path: Path, **kw: Any) -> Any:
        calls.append(path)
        return real(path, **kw)

    monkeypatch.setattr(gguf_reader, "read_gguf_header", counting)
    discover([tmp_path], include_default_places=False)
    discover([tmp_path], include_default_places=False)
    assert len(calls) == 1
    write_gguf(p, name="Changed", context_length=8192)
    os.utime(p, ns=(1, 1))  # a different mtime even on coarse clocks
    assert only_model(discover([tmp_path], include_default_places=False)).name == "Changed"
    assert len(calls) == 2


# -- output ---------------------------------------------------------------------------------------


def test_table_and_json(tmp_path: Path) -> None:
    write_gguf(tmp_path / "b-Q8_0.gguf", name="beta", file_type=LlamaFileType.MOSTLY_Q8_0)
    write_gguf(tmp_path / "a-big.gguf", name="Alpha", n_tensors=40)
    write_gguf(tmp_path / "a-small.gguf", name="alpha", n_tensors=2)
    (tmp_path / "bad.gguf").write_text("nope")

    result = discover([tmp_path], include_default_places=False)
    table = format_table(result)

    lines = table.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "NAME",
        "ARCH",
        "PARAMS",
        "QUANT",
        "CTX",
        "VOCAB",
        "SIZE",
        "PATH",
    ]
    assert [ln.split()[0] for ln in lines[1:4]] == ["alpha", "Alpha", "beta"]  # name, then size
    assert "Q8_0" in lines[3]
    assert re.search(r"\d+ kB", lines[1])  # decimal units, as every face writes sizes
    assert lines[-2] == "Problems (1):"
    assert lines[-1].endswith("bad.gguf: not a GGUF file (starts with b'nope')")

    data = to_json(result)
    assert json.loads(json.dumps(data)) == data
    assert [m["name"] for m in data["models"]] == ["alpha", "Alpha", "beta"]
    first = data["models"][0]
    assert first["quant"] == "Q4_K_M"
    assert first["vocab_size"] == 300
    assert first["context_length"] == 4096
    assert first["shards"] == [first["path"]]
    assert data["problems"] == [
        {"path": str(tmp_path / "bad.gguf"), "reason": "not a GGUF file (starts with b'nope')"}
    ]


def test_table_when_nothing_found(tmp_path: Path) -> None:
    table = format_table(discover([tmp_path], include_default_places=False))
    assert table == f"No GGUF models found (searched: {tmp_path}).\n"


def test_human_units() -> None:
    assert models.human_size(512) == "512 B"
    assert models.human_size(253_104_000) == "253 MB"
    assert models.human_size(5 * 1024**3) == "5.4 GB"
    assert models.human_params(268_098_176) == "268M"
    assert models.human_params(7_241_732_096) == "7.24B"
    assert models.human_params(950) == "950"


# -- the demo model, when `quanttui demo --prepare` has fetched it ---------------------------------

_QUANT_IN_NAME = re.compile(
    r"(?<![A-Z0-9])(I?Q\d_[A-Z0-9_]+?|BF16|F16|F32)(?=\.gguf$|-\d{5}-of-)", re.I
)


def _demo_files() -> list[Path]:
    cache = Path(user_cache_dir("quanttui"))
    exact = cache / "models" / "gemma3-270m-Q4_K_M.gguf"
    found = sorted(cache.rglob("*.gguf")) if cache.is_dir() else []
    return [exact] if exact.is_file() else found


@pytest.mark.skipif(
    not _demo_files(), reason="no demo GGUF in quanttui's cache (quanttui demo --prepare)"
)
def test_demo_models_read() -> None:
    for path in _demo_files():
        info = read_gguf_info(path)
        if re.search(r"gemma-?3", path.name, re.I):
            assert info.architecture == "gemma3", path
        m = _QUANT_IN_NAME.search(path.name)
        if m:
            assert info.quant == m.group(1).upper(), path
        if path.name == "gemma3-270m-Q4_K_M.gguf":
            assert (info.architecture, info.quant) == ("gemma3", "Q4_K_M")
        assert info.vocab_size and info.context_length and info.n_params


def test_quanttui_models_labels_a_requantized_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from quanttui.cli import main

    write_gguf(tmp_path / "m-Q4_K_M.gguf", name=None, file_type=LlamaFileType.MOSTLY_Q4_K_M)
    write_gguf(tmp_path / "m-Q2_K.gguf", name=None, file_type=LlamaFileType.MOSTLY_Q2_K,
               extra=lambda w: w.add_string(models.REQUANTIZED_KEY, "Q4_K_M"))
    runner = CliRunner()
    r = runner.invoke(main, ["models", "--no-default-places", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rows = {line.split()[3]: line for line in r.output.splitlines()[1:3]}
    assert rows["Q2_K"].split()[4] == "‡" and "‡" not in rows["Q4_K_M"]
    assert "‡ requantized from Q4_K_M: made from an already quantized file" in r.output
    r = runner.invoke(main, ["models", "--json", "--no-default-places", str(tmp_path)])
    data = {m["quant"]: m for m in json.loads(r.output)["models"]}
    assert data["Q2_K"]["requantized_from"] == "Q4_K_M"
    assert data["Q4_K_M"]["requantized_from"] is None
