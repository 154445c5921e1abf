"""The page ``charrnn export --format web`` writes, opened from a file in headless
chromium: it loads its own weights, writes text, shows the next-character panel, logs
no errors, and at temperature 0 writes the same 200 characters as ``charrnn sample
--temperature 0`` from the same priming text, for each cell (a one-hot RNN, a
byte-level LSTM, a GRU). Screenshots go to $CHARRNN_SCREENSHOTS when set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_text, tiny_cli, wait_until
from typer.testing import CliRunner

from charrnn.checkpoint import load_model
from charrnn.cli.app import app

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMEDRIVER and CHROMIUM),
        reason="no headless browser: apt-get install chromium chromium-driver (CI installs them)",
    ),
]
runner = CliRunner()
PRIME = "The cat "
LENGTH = 200
# One model per cell, each taking a different path through the page's step: one-hot
# inputs, byte-level symbols, a learned embedding.
MODELS = {
    "rnn": ["--cell", "rnn", "--embed", "0"],
    "lstm": ["--cell", "lstm", "--bytes", "--embed", "8"],
    "gru": ["--cell", "gru", "--embed", "8"],
}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each cell's run (2x16, 60 steps) and its exported page."""
    folder = tmp_path_factory.mktemp("web")
    corpus = folder / "t.txt"
    corpus.write_text(make_text(6000) + "\nsay “hello” – twice\n", encoding="utf-8")
    made = {}
    for cell, options in MODELS.items():
        run = folder / cell
        train = [str(corpus), *options, "--steps", "60", "--out", str(run), "-q"]
        train += [*tiny_cli(layers=2, embed=None), "--cache-dir", str(folder / "cache")]
        result = runner.invoke(app, ["train", *train])
        assert result.exit_code == 0, result.output
        page = folder / f"{cell}.html"
        result = runner.invoke(app, ["export", str(run), "--format", "web", "-o", str(page)])
        assert result.exit_code == 0, result.output
        made[cell] = page
    return made


@pytest.fixture
def browser(browser):  # type: ignore[no-untyped-def]
    """The session's headless chromium (conftest), at this page's 1200 x 800 window."""
    browser.set_window_size(1200, 800)
    yield browser
    browser.set_window_size(1200, 1600)


def _wait(condition: Callable[[], object], seconds: float = 60.0) -> None:
    wait_until(condition, seconds, "the page did not get there in time")


def _write(browser, prime: str, temperature: float, length: int) -> str:  # type: ignore[no-untyped-def]
    """Set the controls, press Generate, wait until done; the text box's text."""
    from selenium.webdriver.common.by import By

    status = browser.find_element(By.ID, "status")
    _wait(lambda: status.get_attribute("data-state") == "ready")
    browser.execute_script(
        "document.getElementById('text').value = arguments[0];"
        "document.getElementById('temperature').value = arguments[1];"
        "document.getElementById('length').value = arguments[2];",
        prime,
        str(temperature),
        str(length),
    )
    browser.find_element(By.ID, "generate").click()
    _wait(lambda: status.get_attribute("data-state") == "done")
    return str(browser.execute_script("return document.getElementById('text').value"))


def _errors(browser) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@pytest.mark.parametrize("cell", list(MODELS))
def test_the_page_writes_what_charrnn_sample_writes(
    cell: str,
    pages: dict[str, Path],
    browser,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    browser.get(pages[cell].as_uri())
    written = _write(browser, PRIME, 0, LENGTH)
    # The symbols the page stepped through: the priming text's, then those it drew.
    symbols = browser.execute_script("return known.ids.map((i) => MODEL.symbols[i])")
    run = pages[cell].with_suffix("")
    sample = runner.invoke(
        app,
        ["sample", str(run), "--prime", PRIME, "--temperature", "0", "--length", str(LENGTH)],
    )
    assert sample.exit_code == 0, sample.output
    want = sample.stdout_bytes.removesuffix(b"\n")
    if cell == "lstm":  # byte-level: the symbols are the bytes
        assert len(symbols) == len(PRIME.encode()) + LENGTH
        assert bytes(symbols) == want
    else:
        assert len(symbols) == len(PRIME) + LENGTH
        assert "".join(map(chr, symbols)) == want.decode("utf-8") == written
    # A tiny model's greedy text soon repeats itself, so the scores are compared too:
    # the page's next-character logits after all of it against PyTorch's.
    model, vocab, _ = load_model(run)
    if browser.execute_script("return MODEL.precision") == "float16":  # what the page holds
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(parameter.half().float())
    ids = torch.tensor([[vocab.symbols.index(s) for s in symbols]])
    with torch.no_grad():
        reference = model(ids)[0][0, -1].numpy()
    page = np.array(browser.execute_script("return Array.from(known.logits)"))
    assert np.abs(page - reference).max() < 1e-4, np.abs(page - reference).max()
    assert _errors(browser) == []


def test_the_page_streams_and_offers_the_next_character(
    pages: dict[str, Path],
    browser,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(pages["gru"].as_uri())
    written = _write(browser, "The ", 0.8, 300)
    assert len(written) == len("The ") + 300
    status = browser.find_element(By.ID, "status")
    assert float(status.get_attribute("data-rate")) > 0
    panel = browser.find_element(By.ID, "candidates")
    _wait(lambda: panel.get_attribute("data-for-length") == str(len(written)))
    choices = panel.find_elements(By.CSS_SELECTOR, "button.candidate")
    assert len(choices) == 5
    shares = [float(c.text.split()[-2]) for c in choices]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 100.01
    char = choices[0].get_attribute("data-char")
    choices[0].click()
    text = browser.find_element(By.ID, "text")
    _wait(lambda: text.get_attribute("value") == written + char)
    shots = Path(os.environ.get("CHARRNN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "share-page.png"))
    assert _errors(browser) == []


@pytest.fixture
def no_network(browser) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The browser offline: the page must not need anything from outside the file."""
    browser.set_network_conditions(offline=True, latency=0, throughput=0)
    yield
    browser.delete_network_conditions()


def test_the_page_works_offline(pages: dict[str, Path], browser, no_network: None) -> None:  # type: ignore[no-untyped-def]
    browser.get(pages["rnn"].as_uri())
    assert len(_write(browser, "", 0.5, 50)) > 0
    assert _errors(browser) == []
