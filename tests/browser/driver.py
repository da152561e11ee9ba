"""Open a map page in headless Chromium (Debian's ``/usr/bin/chromium``, driven by playwright).

Every request to another host than 127.0.0.1 is recorded and aborted; console errors and
uncaught exceptions are recorded; the page is considered drawn when the map's loader says no
request is in flight (``data-wangge-pending`` = 0 after ``data-wangge-ready``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Route, sync_playwright

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "output"
LOCAL_HOSTS = frozenset({"127.0.0.1"})
VIEWPORT = {"width": 1280, "height": 800}


@dataclass
class Visit:
    """What one page visit showed."""

    url: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    paths: dict[str, int] = field(default_factory=dict)
    clustered: int = 0
    bytes: int = 0
    drawn_ms: float = 0.0
    screenshot: Path | None = None


@contextmanager
def browser() -> Iterator[Browser]:
    """A headless Chromium with no network beyond what the pages ask (checked per request)."""
    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield instance
        finally:
            instance.close()


def visit(instance: Browser, url: str, *, layers: tuple[str, ...], shot: str) -> Visit:
    """Open ``url``, wait until drawn, and count what each of ``layers`` drew."""
    result = Visit(url=url)
    context = instance.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()

    def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            result.foreign.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.on("console", lambda m: result.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: result.errors.append(str(e)))
    started = time.perf_counter()
    page.goto(url, wait_until="load")
    page.wait_for_function(
        "document.body.getAttribute('data-wangge-ready') === '1' && "
        "document.body.getAttribute('data-wangge-pending') === '0'",
        timeout=20_000,
    )
    result.drawn_ms = (time.perf_counter() - started) * 1000
    for name in layers:
        count = page.get_attribute(f".wangge-count[data-layer='{name}']", "data-count")
        result.counts[name] = int(count or 0)
        result.paths[name] = page.locator(f".wangge-layer-{name}").count()
    result.clustered = int(
        page.evaluate(
            "Array.from(document.querySelectorAll('.marker-cluster span'))"
            ".reduce((s, e) => s + parseInt(e.textContent, 10), 0)"
        )
    )
    # Bytes of the page and everything it loaded (decoded bodies, all same-origin).
    result.bytes = int(
        page.evaluate(
            "performance.getEntriesByType('navigation').concat("
            "performance.getEntriesByType('resource'))"
            ".reduce((s, e) => s + e.decodedBodySize, 0)"
        )
    )
    OUTPUT.mkdir(parents=True, exist_ok=True)
    result.screenshot = OUTPUT / f"{shot}.png"
    page.screenshot(path=str(result.screenshot))
    context.close()
    return result
