"""The HTML catalogue: self-contained, escaped, and rendered by a real headless Chromium."""

from __future__ import annotations

import dataclasses
import re
import shutil
import struct
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from eventplatform.catalogue import EventCatalogue, render_html, write_catalogue
from tests.unit.catalogue.conftest import REPO, SECRETS

#: Where the screenshot of the demo catalogue is kept for people to look at.
SCREENSHOT = REPO / "var" / "test-artifacts" / "catalogue.png"


class _Texts(HTMLParser):
    """The text of every element of one tag (and class), in document order."""

    def __init__(self, tag: str, css_class: str | None) -> None:
        super().__init__()
        self.tag, self.css_class = tag, css_class
        self.depth = 0
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += tag == self.tag
        elif tag == self.tag and (
            self.css_class is None or self.css_class in (dict(attrs).get("class") or "").split()
        ):
            self.depth = 1
            self.found.append("")

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == self.tag:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.found[-1] += data


def texts(markup: str, tag: str, css_class: str | None = None) -> list[str]:
    parser = _Texts(tag, css_class)
    parser.feed(markup)
    return [" ".join(text.split()) for text in parser.found]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        "the page test needs a headless Chromium: apt-get install chromium "
        "(scripts/system-deps installs it when run as root)"
    )


def _run_chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *arguments,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed: {done.stderr[-2000:]}"
    return done


def test_the_page_is_self_contained(demo: EventCatalogue) -> None:
    page = render_html(demo)
    assert "<script" not in page
    assert not re.search(r"<link\b|\bsrc=|@import|url\(", page)
    external = re.findall(r'href="(?!#|asyncapi\.json")([^"]*)"', page)
    assert external == []


def test_values_from_the_deployment_are_escaped(demo: EventCatalogue) -> None:
    event = dataclasses.replace(demo.events[0], doc='<img src=x onerror="alert(1)"> & more')
    page = render_html(dataclasses.replace(demo, events=(event,), title="A <b>title</b>"))
    assert "<img" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; more" in page
    assert "A &lt;b&gt;title&lt;/b&gt;" in page


def test_no_secret_reaches_the_page(demo: EventCatalogue) -> None:
    page = render_html(demo)
    for value in SECRETS.values():
        assert value not in page
    assert escape('-H "X-API-Key: $ORDERS_API_KEY"') in page


@pytest.mark.slow
def test_chromium_renders_every_event_its_fields_and_the_curl_to_try(
    demo: EventCatalogue, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    write_catalogue(demo, site)
    url = (site / "index.html").as_uri()

    dom = _run_chromium(tmp_path, "--dump-dom", url).stdout
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    _run_chromium(tmp_path, f"--screenshot={SCREENSHOT}", "--window-size=1280,900", url)
    print(f"catalogue screenshot: {SCREENSHOT}")

    headings = texts(dom, "h2")
    assert headings == [
        "CustomerRegistered", "OrderPaid", "OrderPlaced", "OrderShipped", "Topics"
    ]  # fmt: skip
    field_names = texts(dom, "td", "name")
    for field in ("order_id", "items", "unit_price", "placed_at", "registered_at", "carrier"):
        assert field in field_names
    curls = texts(dom, "pre", "curl")
    assert any(
        line.startswith("# ORDERS_API_KEY")
        and "curl -i http://127.0.0.1:8080/hooks/orders " in line
        for line in curls
    )
    assert any("webhook-signature: v1,$sig" in line for line in curls)
    assert "Nobody in this deployment." in texts(dom, "p", "none")
    assert texts(dom, "a", "topic") == ["payments", "orders"]  # OrderPaid's, OrderPlaced's
    png = SCREENSHOT.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1280, 900)
