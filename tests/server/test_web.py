"""The web page end to end in headless Chromium (Playwright driving the Debian chromium).

Enter the API key, drop a photo and a text file on the page, search by the photo's
caption and see the photo's thumbnail as the first result, find the text file, ask a
question and follow a citation to its passage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import KEY, Live, flickr_images

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTE = (
    "Saffron harvest in Krokos. Saffron is picked by hand at dawn in late October, "
    "and it takes about 150 crocus flowers to make one gram of dried saffron threads."
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium: apt-get install -y chromium chromium-driver",
)


@pytest.fixture(scope="module")
def page(multimodal_served: Live) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            tab = browser.new_page()
            tab.set_default_timeout(60_000)
            tab.goto(multimodal_served.url + "/")
            yield tab
        finally:
            browser.close()


def test_page_asks_for_the_key_then_lists_documents(page: Any) -> None:
    page.wait_for_selector("#key-form:not([hidden])")  # the API answered 401
    page.fill("#key", KEY)
    page.click("#key-form button")
    page.wait_for_selector("#documents li")
    assert "printing-press.txt" in page.inner_text("#documents")
    assert ".pdf" in page.inner_text("#supported")


def drop_file(page: Any, name: str, mime: str, data: bytes) -> None:
    """A real drop event carrying a File, as a drag from the desktop produces."""
    page.evaluate(
        """([name, mime, bytes]) => {
            const data = new DataTransfer();
            data.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            const drop = document.getElementById("drop");
            drop.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true }));
            drop.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true }));
        }""",
        [name, mime, list(data)],
    )
    row = page.locator(f"#uploads li:has-text('{name}')")
    row.locator("text=indexed").wait_for()
    assert row.locator("progress").evaluate("p => p.value") == 100


def test_drop_a_photo_and_find_it_by_its_caption(page: Any, data_dir: Path) -> None:
    ((photo, caption),) = flickr_images(data_dir, 1, skip=10)
    drop_file(page, photo.name, "image/jpeg", photo.read_bytes())
    page.wait_for_selector(f"#documents li:has-text('{photo.name}')")

    page.fill("#query", caption)
    page.click("#search-btn")
    first = page.locator("#results li").first
    first.wait_for()
    assert photo.name in first.inner_text() and "image" in first.inner_text()
    thumb = first.locator("img.thumb")
    thumb.wait_for()
    # the thumbnail really loaded (its request carried the key in the cookie)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
    )
    assert 0 < thumb.evaluate("img => img.naturalWidth") <= 256


def test_drop_a_text_file_search_it_ask_and_follow_a_citation(
    page: Any, multimodal_served: Live
) -> None:
    drop_file(page, "saffron.txt", "text/plain", NOTE.encode())
    assert "indexed (1 chunks)" in page.inner_text("#uploads li:has-text('saffron.txt')")
    page.wait_for_selector("#documents li:has-text('saffron.txt')")

    page.fill("#query", "how many crocus flowers for a gram of saffron")
    page.click("#search-btn")
    # multimodal search fuses the text and image lists, so the best photo may share rank 1
    hit = page.locator("#results li:has-text('saffron.txt')").first
    hit.wait_for()
    assert int(hit.get_attribute("value")) <= 2 and "150 crocus flowers" in hit.inner_text()

    page.fill("#query", "Who invented the printing press?")
    page.click("#ask-btn")
    page.wait_for_selector("#status:has-text('citation')")
    answer = page.inner_text("#answer")
    assert "Gutenberg" in answer
    citation = page.locator("#answer a.citation").first
    number = int(citation.inner_text().strip("[]"))
    citation.click()
    cited = page.locator(f"#results li#p-{number}")
    assert "highlight" in (cited.get_attribute("class") or "")
    assert "printing" in cited.inner_text().lower()
    stages = page.text_content("#stages") or ""  # inside a closed <details>
    assert "retrieve" in stages and "generate" in stages

    storage = json.loads(page.evaluate("() => JSON.stringify(localStorage)"))
    assert storage.get("mmrag_key") == KEY
    docs = multimodal_served.client.get("/api/documents").json()["documents"]
    saffron = [d for d in docs if d["name"] == "saffron.txt"]
    assert saffron and saffron[0]["uploaded"]
