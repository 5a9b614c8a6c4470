"""Clients for http:// URLs skip loading the CA bundle; https:// keeps full verification."""

from __future__ import annotations

import ssl

import pytest

from quanttui.core.llama.client import LlamaClient
from quanttui.core.tls import tls_verify


def test_https_verifies_with_the_ca_bundle() -> None:
    assert tls_verify("https://example.org:8080") is True


def test_http_gets_a_context_that_would_refuse_anything() -> None:
    ctx = tls_verify("http://127.0.0.1:8080")
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0  # nothing loaded: nothing trusted
    assert tls_verify("http://other:1") is ctx  # built once


async def test_a_client_for_http_does_not_load_the_ca_bundle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def spy(self: ssl.SSLContext, *a: object, **k: object) -> None:
        loaded.append(a or k)
        real(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", spy)
    async with LlamaClient("http://127.0.0.1:9"):
        pass
    assert loaded == []
    async with LlamaClient("https://127.0.0.1:9"):
        pass
    assert loaded  # the control: an https client does load it
