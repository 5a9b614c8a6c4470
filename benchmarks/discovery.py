"""How fast is GGUF discovery? 200 GGUF files with real-sized vocabularies, tiny tensors.

Writes the files (realistic metadata: llama-2, mistral, phi-3, llama-3.1 and qwen2.5 with BPE
merges, mistral-nemo, gemma-3; 32k-262k tokens each, scores / token types / merges as the
converter writes them; ~300 tiny tensors), then times
`discover([dir], include_default_places=False)`:

- cold: every file fsync'ed and dropped from the page cache (posix_fadvise DONTNEED), header
  cache empty: what a first `quanttui models` after a reboot costs, roughly;
- page cache warm, header cache empty: a fresh `quanttui models` process;
- warm: the same process scanning again (headers cached by path, size and mtime).

Then the time per file of quanttui's header reader against `gguf.GGUFReader` (which parses every
metadata array element into numpy) on the smallest and the largest vocabulary (no target).

Target: `discover` on 200 files (and pro rata for --files) in a fresh process with the page
cache warm and no header cache, best of 3 runs (wall time) < 1 s, i.e. < 5 ms per file.

    .venv/bin/python benchmarks/discovery.py                    # ~30 s
    .venv/bin/python benchmarks/discovery.py --no-reader        # ~20 s
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType, LlamaFileType

from _common import Targets
from quanttui.core.models import discovery as models
from quanttui.core.models.discovery import discover, human_size
from quanttui.core.models.gguf_reader import read_gguf_header


@dataclass(frozen=True)
class Template:
    key: str
    arch: str
    name: str
    size_label: str
    n_vocab: int
    n_merges: int  # 0: SentencePiece (scores), else BPE (merges)
    context_length: int
    n_layers: int


TEMPLATES = [
    Template("llama-2-7b", "llama", "Llama 2 7b", "7B", 32_000, 0, 4096, 32),
    Template("mistral-7b-v0.3", "llama", "Mistral 7B Instruct v0.3", "7B", 32_768, 0, 32768, 32),
    Template("phi-3-mini", "phi3", "Phi 3 Mini 4k Instruct", "3.8B", 32_064, 0, 4096, 32),
    Template(
        "llama-3.1-8b", "llama", "Meta Llama 3.1 8B Instruct", "8B", 128_256, 280_147, 131072, 32
    ),
    Template("qwen2.5-7b", "qwen2", "Qwen2.5 7B Instruct", "7.6B", 152_064, 151_387, 32768, 28),
    Template(
        "mistral-nemo", "llama", "Mistral Nemo Instruct 2407", "12B", 131_072, 269_443, 1024000, 40
    ),
    Template("gemma-3-4b", "gemma3", "Gemma 3 4b It", "4B", 262_144, 0, 131072, 34),
]

QUANTS = [
    LlamaFileType.MOSTLY_Q2_K,
    LlamaFileType.MOSTLY_Q3_K_M,
    LlamaFileType.MOSTLY_Q4_0,
    LlamaFileType.MOSTLY_Q4_K_S,
    LlamaFileType.MOSTLY_Q4_K_M,
    LlamaFileType.MOSTLY_Q5_K_M,
    LlamaFileType.MOSTLY_Q6_K,
    LlamaFileType.MOSTLY_Q8_0,
    LlamaFileType.MOSTLY_F16,
    LlamaFileType.MOSTLY_IQ4_XS,
]

_LATIN = "etaoinshrdlucmfwypvbgkjqxz"
_OTHER = "éèàüößñçø" + "的一是不了人我在有他这中" + "айоинтсвл" + "0123456789"


def _pieces(rng: random.Random, n: int, space: str) -> list[str]:
    """Vocabulary-like strings: special and byte tokens, then word pieces (mean ~7 bytes)."""
    out = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    seen = set(out)
    while len(out) < n:
        length = min(16, max(1, int(rng.expovariate(1 / 5.0)) + 1))
        alphabet = _LATIN if rng.random() < 0.85 else _OTHER
        s = "".join(rng.choice(alphabet) for _ in range(length))
        if rng.random() < 0.6:
            s = space + s
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def write_template(t: Template, path: Path, rng: random.Random) -> None:
    w = gguf.GGUFWriter(path, t.arch)
    w.add_type("model")
    w.add_name(t.name)
    w.add_basename(t.key)
    w.add_size_label(t.size_label)
    w.add_license("apache-2.0")
    w.add_context_length(t.context_length)
    w.add_embedding_length(4096)
    w.add_block_count(t.n_layers)
    w.add_feed_forward_length(14336)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_rope_freq_base(1e6)
    w.add_layer_norm_rms_eps(1e-5)
    if t.n_merges:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe")
        tokens = _pieces(rng, t.n_vocab, "Ġ")
        w.add_token_list(tokens)
        w.add_token_types([1] * t.n_vocab)
        # a merge joins two pieces into a token: "Ġhel lo"
        long_ones = [tok for tok in tokens[259:] if len(tok) > 1]
        merges = []
        for _ in range(t.n_merges):
            tok = rng.choice(long_ones)
            cut = rng.randrange(1, len(tok))
            merges.append(f"{tok[:cut]} {tok[cut:]}")
        w.add_token_merges(merges)
    else:
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        tokens = _pieces(rng, t.n_vocab, "▁")
        w.add_token_list(tokens)
        w.add_token_scores([-float(i) for i in range(t.n_vocab)])
        w.add_token_types([1] * t.n_vocab)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_chat_template(
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}" * 20
    )
    w.add_quantization_version(2)
    w.add_file_type(LlamaFileType.MOSTLY_Q4_K_M)  # last, where llama-quantize puts it
    # ~9 tensors a layer like a real model, each tiny (one Q4_K block or 32 floats).
    w.add_tensor(
        "token_embd.weight", np.zeros((1, 144), np.uint8), raw_dtype=GGMLQuantizationType.Q4_K
    )
    for i in range(t.n_layers):
        for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
            w.add_tensor(
                f"blk.{i}.{part}.weight",
                np.zeros((1, 144), np.uint8),
                raw_dtype=GGMLQuantizationType.Q4_K,
            )
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(32, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(32, np.float32))
    w.add_tensor("output_norm.weight", np.ones(32, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def build(root: Path, n_files: int) -> dict[str, Path]:
    """Templates written with GGUFWriter, then copied with another general.file_type each."""
    rng = random.Random(42)
    src = root / "_templates"
    src.mkdir()
    templates: dict[str, Path] = {}
    for t in TEMPLATES:
        path = src / f"{t.key}.gguf"
        write_template(t, path, rng)
        templates[t.key] = path
    out = root / "models"
    out.mkdir()
    blobs = {k: p.read_bytes() for k, p in templates.items()}
    for i in range(n_files):
        t = TEMPLATES[i % len(TEMPLATES)]
        quant = QUANTS[(i // len(TEMPLATES)) % len(QUANTS)]
        data = bytearray(blobs[t.key])
        key = b"general.file_type"
        at = data.rindex(key) + len(key) + 4  # past the u32 value type
        data[at : at + 4] = int(quant).to_bytes(4, "little")
        sub = out / t.key
        sub.mkdir(exist_ok=True)
        (sub / f"{t.key}-{quant.name.removeprefix('MOSTLY_')}-{i:03d}.gguf").write_bytes(data)
    return templates


def drop_page_cache(root: Path) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in root.rglob("*.gguf"):
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed2(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds: CPU time says more than wall time on a busy machine."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def best_of(fn: Callable[[], object], n: int) -> float:
    return min(timed(fn) for _ in range(n))


def best_of2(fn: Callable[[], object], n: int) -> tuple[float, float]:
    return min((timed2(fn) for _ in range(n)), key=lambda wc: wc[0])


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--dir", type=Path, help="write here (kept) instead of a temporary directory")
    ap.add_argument(
        "--no-reader-large",
        action="store_true",
        help="skip gguf.GGUFReader on the 262k vocabulary (it takes ~10 s)",
    )
    ap.add_argument(
        "--no-reader",
        action="store_true",
        help="skip the per-file comparison with gguf.GGUFReader (~10-20 s) altogether",
    )
    args = ap.parse_args()

    root = args.dir or Path(tempfile.mkdtemp(prefix="quanttui-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        templates = build(root, args.files)
        model_dir = root / "models"
        files = sorted(model_dir.rglob("*.gguf"))
        total = sum(p.stat().st_size for p in files)
        took = time.perf_counter() - t0
        print(f"wrote {len(files)} GGUF files, {human_size(total)}, in {took:.1f} s ({model_dir})")
        for t in TEMPLATES:
            extra = f" + {t.n_merges} merges" if t.n_merges else " + scores"
            size = human_size(templates[t.key].stat().st_size)
            print(f"  {t.key:16s} {t.n_vocab:>7} tokens{extra:16s} {size:>10}")

        def run() -> object:
            result = discover([model_dir], include_default_places=False)
            assert len(result.models) == len(files), result.problems
            return result

        print(f"\ndiscover([dir], include_default_places=False), {len(files)} files:")
        print(f"  {'':46s} {'wall':>9s} {'CPU':>9s} {'files/s':>9s}")
        models.clear_cache()
        dropped = drop_page_cache(model_dir)
        label = "cold (page cache dropped)" if dropped else "first run"
        rows = [(label, timed2(run))]
        models.clear_cache()
        rows.append(("page cache warm, no header cache", timed2(run)))

        def fresh() -> object:
            models.clear_cache()
            return run()

        rows.append(("page cache warm, no header cache (best of 3)", best_of2(fresh, 3)))
        rows.append(("warm (header cache, best of 5)", best_of2(run, 5)))
        for what, (wall, cpu) in rows:
            print(f"  {what:46s} {wall:7.3f} s {cpu:7.3f} s {len(files) / wall:9.0f}")
        target = Targets("discovery")
        target.check(f"discover {len(files)} files, page cache warm, no header cache (best of 3)",
                     "<", len(files) / 200, rows[2][1][0], "s",
                     detail=f"CPU {rows[2][1][1]:.3f} s; target 1 s per 200 files")
        if hasattr(os, "getloadavg"):
            print(f"  load average now: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

        keys = [] if args.no_reader else ["llama-2-7b", "llama-3.1-8b"] + (
            [] if args.no_reader_large else ["gemma-3-4b"])
        if keys:
            print("\nper file: quanttui.core.models.gguf_reader.read_gguf_header vs "
                  "gguf.GGUFReader")
        for key in keys:
            path = templates[key]
            t = next(t for t in TEMPLATES if t.key == key)
            mine = best_of(lambda p=path: read_gguf_header(p), 5)  # type: ignore[misc]
            theirs = timed(lambda p=path: gguf.GGUFReader(p))  # type: ignore[misc]
            strings = t.n_vocab + t.n_merges
            print(
                f"  {key:14s} ({strings:>6} strings)  {mine * 1e3:7.1f} ms"
                f" vs {theirs * 1e3:8.0f} ms  GGUFReader/ours = {theirs / mine:,.0f}x"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return target.finish()


if __name__ == "__main__":
    sys.exit(main())
