"""The inspect page in a real headless browser (conftest's session ``browser``: Debian's
chromium and chromedriver, which .ci/run installs; the slow tier): no console errors, the
prediction tooltip on hover, colours that change with the unit, and a screenshot.

Screenshots go to $CHARRNN_SCREENSHOTS when set (to look at them), else a temporary
folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn.cli.app import app

pytestmark = pytest.mark.slow  # a real browser (conftest marks any test using it, too)
runner = CliRunner()


@pytest.fixture(scope="module")
def page(lstm_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of the shared 2x16 LSTM run (conftest) over its own training text."""
    out = tmp_path_factory.mktemp("page") / "inspect.html"
    corpus = lstm_run.parent / "t.txt"
    result = runner.invoke(
        app, ["inspect", str(lstm_run), str(corpus), "--max-chars", "800", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CHARRNN_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_the_page_works_in_a_browser(page: Path, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    spans = browser.find_elements(By.CSS_SELECTOR, "#surprisal span")
    assert len(spans) == 800
    assert "rgb(255, 255, 255)" not in {
        s.value_of_css_property("background-color") for s in spans[:50]
    }
    ActionChains(browser).move_to_element(spans[5]).perform()
    tip = browser.find_element(By.ID, "tip")
    assert tip.is_displayed()
    assert "next, the model expects" in tip.text and "%" in tip.text
    browser.save_screenshot(str(_shots(tmp_path) / "inspect-hover.png"))

    def colours() -> list[str]:
        cells = browser.find_elements(By.CSS_SELECTOR, "#neurons span")[:200]
        return [c.value_of_css_property("background-color") for c in cells]

    before = colours()
    rows = browser.find_elements(By.CSS_SELECTOR, "#matches tr")
    assert rows, "the units-that-track table is empty"
    unit = browser.find_element(By.ID, "unit")
    unit.clear()
    unit.send_keys("7")
    browser.execute_script("document.getElementById('unit').dispatchEvent(new Event('change'))")
    after = colours()
    assert after != before
    assert "unit 7" in browser.find_element(By.ID, "which").text
    rows[-1].click()
    assert colours() != after
    browser.execute_script("document.getElementById('neurons').scrollIntoView()")
    browser.save_screenshot(str(_shots(tmp_path) / "inspect-neurons.png"))
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


# Texts the HTML parser treats specially inside a <script> block: "<!--" followed by
# "<script" sends it into the double-escaped state, and "</script" ends the block.
# Nothing closes the comment ("-->" would end that state).
HOSTILE = "say <!--<script> & \"q\" 's' \u2028 <b>"


def test_a_hostile_text_run_and_name_leave_the_page_working(  # type: ignore[no-untyped-def]
    tmp_path: Path, browser
) -> None:
    from selenium.webdriver.common.by import By

    corpus = tmp_path / "<!--<script>.txt"
    corpus.write_text((make_text(3000) + "\n" + HOSTILE + "\n") * 2, encoding="utf-8")
    run = tmp_path / "run <!--<script>"
    options = ["--steps", "10", "--out", str(run), "-q", *tiny_cli()]
    assert runner.invoke(app, ["train", str(corpus), "--cell", "lstm", *options]).exit_code == 0
    # Seven times: over the 200 characters below which no unit is offered (too short).
    result = runner.invoke(app, ["inspect", str(run), "--text", HOSTILE * 7])
    assert result.exit_code == 0, result.output
    browser.get((run / "inspect.html").as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    # Before: the view, the neurons and the feature table were all empty.
    spans = browser.find_elements(By.CSS_SELECTOR, "#surprisal span")
    assert len(spans) == len(HOSTILE) * 7  # one per character
    assert browser.find_elements(By.CSS_SELECTOR, "#neurons span")
    assert browser.find_elements(By.CSS_SELECTOR, "#matches tr")
    assert "<!--<script>" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(_shots(tmp_path) / "inspect-hostile.png"))
