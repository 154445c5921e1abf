"""The page ``charrnn serve`` shows at ``/``, in a real headless browser against a live
server on loopback: the continuation streams into the text box, the "next character"
panel lists the model's likeliest characters, a click on one appends it, and the
console stays clean. Screenshots go to $CHARRNN_SCREENSHOTS when set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_text, tiny_config, wait_until
from test_serve import _start, _stop

from charrnn.events import Silent
from charrnn.training.launch import train

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytest.importorskip("uvicorn", reason="charrnn[serve] is not installed")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    not (CHROMEDRIVER and CHROMIUM),
    reason="no headless browser: apt-get install chromium chromium-driver (CI installs them)",
)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from charrnn.serving.server import free_port

    folder = tmp_path_factory.mktemp("serve-page")
    text = folder / "text.txt"
    text.write_text(make_text(8000), encoding="utf-8")
    run = folder / "prose"
    train(tiny_config(text, steps=80), run, reporter=Silent(), cache_dir=folder / "cache")
    port = free_port()
    process = _start([str(run)], port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        assert _stop(process) == 0


@pytest.fixture
def browser(browser):  # type: ignore[no-untyped-def]
    """The session's headless chromium (conftest), at this page's 1200 x 800 window."""
    browser.set_window_size(1200, 800)
    yield browser
    browser.set_window_size(1200, 1600)


def _wait(condition, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    wait_until(condition, seconds, "the page did not get there in time")


def test_the_page_streams_text_and_appends_a_chosen_character(url: str, browser) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("CHARRNN_SCREENSHOTS", "/tmp"))
    shots.mkdir(parents=True, exist_ok=True)
    browser.get(url)
    text = browser.find_element(By.ID, "text")
    text.send_keys("The cat")
    panel = browser.find_element(By.ID, "candidates")
    # The panel follows the text: on a slow machine it is drawn for "The c" first and
    # drawn again (its buttons replaced) for "The cat"; wait for that one, and read it
    # in one call (CI once read a button the next drawing had just removed).
    _wait(lambda: panel.get_attribute("data-for-length") == str(len("The cat")))
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#candidates .candidate')].map(b => b.innerText)"
    )
    assert len(labels) == 5
    shares = [float(label.split()[-2]) for label in labels]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.01

    browser.find_element(By.ID, "length").clear()
    browser.find_element(By.ID, "length").send_keys("3000")
    browser.find_element(By.ID, "generate").click()
    status = browser.find_element(By.ID, "status")
    _wait(lambda: status.text == "done", 60)
    # it came as a stream of events (a tiny model writes 3000 characters in a blink,
    # so the page counts the events rather than the test watching the text grow)
    assert int(status.get_attribute("data-chunks")) >= 2
    written = text.get_property("value")
    assert written.startswith("The cat") and len(written) == len("The cat") + 3000
    browser.save_screenshot(str(shots / "serve-page.png"))

    _wait(lambda: panel.get_attribute("data-for-length") == str(len(written)))
    first = browser.find_elements(By.CSS_SELECTOR, "#candidates .candidate")[0]
    char = first.get_attribute("data-char")
    first.click()
    _wait(lambda: text.get_property("value") == written + char)
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
