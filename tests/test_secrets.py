"""Secrets stay out of everything a run writes: one masking function (core.secrets.mask_args)
for the JSON, the history, the server logs; a managed server's API key reaches the server (in
its environment) and the client."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from quanttui.config import config_from_dict, config_to_dict
from quanttui.core.models.binaries import Tool
from quanttui.core.models.launcher import LaunchDefaults, specs_from_config
from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.core.secrets import mask_args, mask_url, split_secrets
from quanttui.testing.fake_server import FakeLlamaServer

KEY_CONFIG = "sk-SECRET-from-config-1a2b"
PASSWORD = "pw-SECRET-in-url-7g8h"
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
    """API keys (in the config, and as `--api-key=K` among the launch flags, the form
    llama-server itself rejects), a Hugging Face token and a URL's password: in no file the run
    writes (JSON, Markdown, CSV, SVG, the history, the kept server logs), not on stdout or
    stderr, and not in the process list while the servers run."""
    fake = FakeLlamaServer().start()
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
extra_args = ["--api-key={KEY_FLAG}", "--hf-token", "{HF}"]

[[servers]]
name = "proxied"
url = "{fake.url.replace("http://", f"http://me:{PASSWORD}@")}"
""")
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    env = dict(os.environ, QUANTTUI_CACHE_DIR=str(cache))
    seen: set[str] = set()  # every command line of a llama-server while the run goes on
    try:
        proc = subprocess.Popen([sys.executable, "-m", "quanttui", "run", "--headless",
                                 "--format", "json,md,csv,svg", "-o", str(out / "r.json")],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        while proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    cmd = child.cmdline()
                    if "--fit" in cmd:  # one of the servers (LaunchSpec.args)
                        seen.add(" ".join(cmd))
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        fake.stop()
    p = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert len(seen) >= 2, seen
    assert "Traceback" not in p.stderr
    assert p.returncode == 1, p.stderr  # the long prompt failed, and nothing else
    data = json.loads((out / "r.json").read_text())
    ok = {(r["server"], r["prompt_id"]) for r in data["records"] if r["ok"]}
    # both keys reached server and client
    assert {s for s, _ in ok} == {"keyed", "flagged", "proxied"}
    bad = [r for r in data["records"] if not r["ok"]]
    assert len(bad) == 2 and all("exceeds the available context size" in r["error"]
                                 for r in bad)
    flagged = next(s for s in data["servers"] if s["name"] == "flagged")
    assert not {"--api-key", "--hf-token"} & {a.partition("=")[0]
                                              for a in flagged["launch_args"]}
    logs = sorted((cache / "logs").glob("*.log"))  # kept: their servers had a failure
    assert len(logs) == 2 and all(str(log) in p.stderr for log in logs)
    written = [f for d in (out, Path(os.environ["QUANTTUI_DATA_DIR"]), cache / "logs")
               for f in d.rglob("*") if f.is_file()]
    assert {f.suffix for f in written} >= {".json", ".md", ".csv", ".svg", ".sqlite3", ".log"}
    for f in written:
        content = f.read_bytes()
        for secret in (KEY_CONFIG, KEY_FLAG, HF, PASSWORD):
            assert secret.encode() not in content, f"{secret} in {f}"
    for secret in (KEY_CONFIG, KEY_FLAG, HF, PASSWORD):
        assert secret not in p.stdout + p.stderr
        assert not [c for c in seen if secret in c]


def test_mask_url() -> None:
    assert mask_url(f"http://me:{PASSWORD}@10.0.0.1:8080/v1") == "http://me:***@10.0.0.1:8080/v1"
    assert mask_url(f"https://:{PASSWORD}@[::1]:9") == "https://:***@[::1]:9"
    assert mask_url(f"http://h:1/x?api_key={PASSWORD}&n=2") == "http://h:1/x?api_key=***&n=2"
    # a username alone is often a token (http://TOKEN@host): all of it, not left in the clear
    assert mask_url(f"http://{PASSWORD}@10.0.0.1:8080/v1") == "http://***@10.0.0.1:8080/v1"
    assert mask_url("http://@h:1") == "http://***@h:1"
    assert mask_url(f"http://{PASSWORD}@h:1/?token={PASSWORD}") == "http://***@h:1/?token=***"
    for plain in ("http://127.0.0.1:8080", "http://h:1/?n=2", "not a url",
                  "http://h:99999999"):
        assert mask_url(plain) == plain


def test_split_secrets_takes_them_off_the_command_line() -> None:
    args, env = split_secrets(["-m", "x.gguf", "--api-key", "k1", f"--api-key={KEY_FLAG}",
                               f"--hf-token={HF}", "--port", "8", "-hft", HF, "--api-key-file",
                               "/keys"])
    assert args == ["-m", "x.gguf", "--port", "8", "--api-key-file", "/keys"]
    assert env == {"LLAMA_API_KEY": f"k1,{KEY_FLAG}", "HF_TOKEN": HF}
    assert split_secrets(["--api-key"]) == (["--api-key"], {})  # no value: llama-server says so


def test_url_password_is_in_nothing_a_run_writes(tmp_path: Path) -> None:
    """A server URL with `user:password@`, or a token as its username alone (`TOKEN@`): the
    password or token reaches nothing written or printed (JSON, Markdown, CSV, SVG, the
    history, stdout and stderr), for a server that answers and for one that doesn't (its
    errors quote the URL)."""
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text("[run]\nwarmup = 0\n[prompts]\nsuites = []\n")
    out = tmp_path / "out"
    with FakeLlamaServer() as fake:
        up = fake.url.replace("http://", f"http://me:{PASSWORD}@")
        p = subprocess.run(
            [sys.executable, "-m", "quanttui", "--config", str(cfg), "run", "--headless",
             "--server", f"up={up}", "--server",
             f"down=http://me:{PASSWORD}@127.0.0.1:9/?token={PASSWORD}",
             "--server", f"token=http://{PASSWORD}@127.0.0.1:9", "--prompt", "hi",
             "-n", "4", "--format", "json,md,csv,svg", "-o", str(out / "r.json")],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr
    assert p.returncode == 1, p.stderr  # `down` is unreachable, `up` answered
    data = json.loads((out / "r.json").read_text())
    assert [r["ok"] for r in data["records"]] == [True]
    assert "me:***@" in json.dumps(data["servers"]) and "me:***@" in p.stderr
    assert "http://***@127.0.0.1:9" in json.dumps(data["servers"]) + p.stderr
    written = [f for d in (out, Path(os.environ["QUANTTUI_DATA_DIR"])) for f in d.rglob("*")
               if f.is_file()]
    assert {f.suffix for f in written} >= {".json", ".md", ".csv", ".svg", ".sqlite3"}
    for f in written:
        assert PASSWORD.encode() not in f.read_bytes(), f
    assert PASSWORD not in p.stdout + p.stderr


def test_a_managed_servers_secrets_stay_off_its_command_line_and_out_of_its_log(
        tmp_path: Path) -> None:
    """`ps` shows every user a process's arguments: the keys go in its environment. A server
    that prints them anyway (here a script standing in for llama-server) has them masked in
    its kept log and in the log tail quoted in messages."""
    fake = tmp_path / "llama-server"
    fake.write_text('#!/bin/sh\necho "args: $*"\necho "key: $LLAMA_API_KEY hf: $HF_TOKEN"\n'
                    "sleep 60\n")
    fake.chmod(0o755)
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    spec = LaunchSpec(model, api_key=KEY_CONFIG,
                      extra_args=(f"--api-key={KEY_FLAG}", "--hf-token", HF, "-fa", "off"))
    server = ManagedServer(spec, binary=Tool("llama-server", fake, "test"), log_dir=tmp_path)
    server.start()
    try:
        assert server.proc is not None and server.log_path is not None
        deadline = time.monotonic() + 10
        while "key:" not in server.log_path.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        cmdline = " ".join(psutil.Process(server.proc.pid).cmdline())
        assert "-fa off" in cmdline
        env = server.log_path.read_text()
        assert f"key: {KEY_CONFIG},{KEY_FLAG} hf: {HF}" in env  # it got them, from its env
        tail = server.log_tail()
        server.keep_log = True
    finally:
        server.stop()
    kept = server.log_path.read_text()
    for secret in (KEY_CONFIG, KEY_FLAG, HF):
        assert secret not in cmdline and secret not in tail and secret not in kept
        assert secret not in " ".join(server.spawned_args)
    assert "key: ***,*** hf: ***" in kept
