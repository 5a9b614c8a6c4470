"""Secrets stay out of everything a run writes: one masking function (core.secrets.mask_args)
for the JSON, the history, the server logs; a managed server's API key reaches the server (in
its environment) and the client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quanttui.config import config_from_dict, config_to_dict
from quanttui.core.models.launcher import LaunchDefaults, specs_from_config
from quanttui.core.models.servers import LaunchSpec
from quanttui.core.secrets import mask_args

KEY_CONFIG = "sk-SECRET-from-config-1a2b"
KEY_FLAG = "sk-SECRET-from-flag-3c4d"
HF = "hf_SECRET5e6f"


def test_mask_args() -> None:
    assert mask_args(["-m", "x.gguf", "--api-key", "k1,k2", "--port", "8080"]) == [
        "-m", "x.gguf", "--api-key", "***", "--port", "8080"]
    assert mask_args(["--api-key=k", "--hf-token", "t", "-hft", "t", "--api-key-file", "/k",
                      "--ssl-key-file", "/s.pem", "HF_TOKEN=abc", "MY_API_KEY=x"]) == [
        "--api-key=***", "--hf-token", "***", "-hft", "***", "--api-key-file", "***",
        "--ssl-key-file", "***", "HF_TOKEN=***", "MY_API_KEY=***"]
    # not secrets: other flags, a flag at the end with no value, lower-case words
    assert mask_args(["--alias", "key=value", "-c", "2048", "--api-key"]) == [
        "--alias", "key=value", "-c", "2048", "--api-key"]


def test_config_dict_masks_keys_and_launch_flags() -> None:
    cfg = config_from_dict({
        "models": {"launch": {"extra_args": ["--hf-token", HF]}},
        "servers": [
            {"name": "a", "url": "http://127.0.0.1:1", "api_key": KEY_CONFIG},
            {"name": "b", "model": "/m.gguf", "launch": {"extra_args": ["--api-key", KEY_FLAG,
                                                                        "-fa", "off"]}},
        ]})
    d = config_to_dict(cfg)
    text = json.dumps(d)
    assert KEY_CONFIG not in text and KEY_FLAG not in text and HF not in text
    assert d["servers"][1]["launch"]["extra_args"] == ["--api-key", "***", "-fa", "off"]
    assert LaunchDefaults(extra_args=("--hf-token", HF)).describe().endswith("--hf-token ***")
    (_, spec), = specs_from_config(cfg)
    assert spec.client_key == KEY_FLAG  # the client sends the key given on the command line
    assert KEY_CONFIG not in repr(LaunchSpec(Path("m"), api_key=KEY_CONFIG))


def test_client_key_from_the_launch_flags(tmp_path: Path) -> None:
    assert LaunchSpec(Path("m"), api_key="k").client_key == "k"
    assert LaunchSpec(Path("m"), extra_args=("--api-key=a,b",)).client_key == "a"
    keyfile = tmp_path / "keys"
    keyfile.write_text("first\nsecond\n")
    assert LaunchSpec(Path("m"), extra_args=("--api-key-file", str(keyfile))).client_key == (
        "first")
    assert LaunchSpec(Path("m")).client_key is None


@pytest.mark.real
def test_no_file_a_run_writes_holds_a_secret(demo_models: dict[str, Path], tmp_path: Path
                                             ) -> None:
    long_prompt = "word " * 700  # longer than the context: each server answers 400
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text(f"""
[run]
warmup = 0
[generation]
n_predict = 8
[prompts]
suites = []
inline = ["Hello there", "{long_prompt}"]

[[servers]]
name = "keyed"
model = "{demo_models['Q2_K']}"
api_key = "{KEY_CONFIG}"
[servers.launch]
ctx_size = 512

[[servers]]
name = "flagged"
model = "{demo_models['Q4_K_M']}"
[servers.launch]
ctx_size = 512
extra_args = ["--api-key", "{KEY_FLAG}", "--hf-token", "{HF}"]
""")
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    env = dict(os.environ, QUANTTUI_CACHE_DIR=str(cache))
    p = subprocess.run([sys.executable, "-m", "quanttui", "run", "--headless",
                        "--format", "json,md,csv,svg", "-o", str(out / "r.json")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in p.stderr
    assert p.returncode == 1, p.stderr  # the long prompt failed, and nothing else
    data = json.loads((out / "r.json").read_text())
    ok = {(r["server"], r["prompt_id"]) for r in data["records"] if r["ok"]}
    assert {s for s, _ in ok} == {"keyed", "flagged"}  # both keys reached server and client
    bad = [r for r in data["records"] if not r["ok"]]
    assert len(bad) == 2 and all("exceeds the available context size" in r["error"]
                                 for r in bad)
    flagged = next(s for s in data["servers"] if s["name"] == "flagged")
    args = flagged["launch_args"]
    i = args.index("--api-key")
    assert args[i:i + 4] == ["--api-key", "***", "--hf-token", "***"]
    logs = sorted((cache / "logs").glob("*.log"))  # kept: their servers had a failure
    assert len(logs) == 2 and all(str(log) in p.stderr for log in logs)
    written = [f for d in (out, Path(os.environ["QUANTTUI_DATA_DIR"]), cache / "logs")
               for f in d.rglob("*") if f.is_file()]
    assert {f.suffix for f in written} >= {".json", ".md", ".csv", ".svg", ".sqlite3", ".log"}
    for f in written:
        content = f.read_bytes()
        for secret in (KEY_CONFIG, KEY_FLAG, HF):
            assert secret.encode() not in content, f"{secret} in {f}"
    for secret in (KEY_CONFIG, KEY_FLAG, HF):
        assert secret not in p.stdout + p.stderr
