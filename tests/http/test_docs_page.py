"""/docs renders the API reference in headless Chromium with every third-party host
unresolvable (the page must work offline), and the vendored assets are in place."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio import serve

from afterchain.node.http.app import build_app
from afterchain.node.http.reference import ASSETS, ASSETS_DIR
from afterchain.node.http.service import NodeHttp

from ..node.util import memory_cluster

ROOT = Path(__file__).resolve().parents[2]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_the_vendored_assets_are_in_place_and_in_the_wheel_data() -> None:
    for name in ASSETS:
        assert (ASSETS_DIR / name).is_file(), name
    assert "Apache License" in (ASSETS_DIR / "LICENSE").read_text()
    assert "sourceMappingURL" not in (ASSETS_DIR / "swagger-ui-bundle.js").read_text()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "swagger_ui/*" in data["afterchain.node.http"]
    assert (ROOT / "scripts" / "vendor_swagger_ui").read_text().count((ASSETS_DIR / "VERSION").read_text().split()[1]) == 1


async def test_docs_renders_offline_in_headless_chromium(tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the /docs rendering check did not run")
    async with memory_cluster(tmp_path, n=1) as (nodes, _):
        cfg = HyperConfig()
        cfg.bind = ["127.0.0.1:0"]
        cfg.accesslog = None
        cfg.errorlog = None
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(serve, build_app(NodeHttp(nodes[0])), cfg)  # type: ignore[arg-type]
            url = f"{bound[0]}/docs"
            flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no third-party host resolves
                     f"--user-data-dir={tmp_path / 'chrome'}", "--virtual-time-budget=15000"]
            done = await trio.run_process([browser, *flags, "--dump-dom", url], capture_stdout=True, capture_stderr=True,
                                          check=False)
            nursery.cancel_scope.cancel()
    dom = done.stdout.decode(errors="replace")
    assert "swagger-ui" in dom and "afterchain node API" in dom, dom[-2000:]
    for text in ("/v1/events/{event_id}", "Submit signed events", "/v1/proofs/state/{key}", "/openapi.json"):
        assert text in dom, text
    assert "Failed to load API definition" not in dom
