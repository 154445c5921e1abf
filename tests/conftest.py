"""Shared fixtures: tiny corpora we write ourselves, an isolated cache, a quiet Rich,
runs trained once for the session (``lstm_run``; ``tiny_run`` for a module's own) and
one headless ``browser``.

Two tiers: ``pytest -m "not slow"`` is the inner loop; ``slow`` marks a test over ~3 s,
one that starts a process importing torch, torchrun, the browser or a wheel build. CI
runs both.
"""

from __future__ import annotations

import functools
import random
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.testing

from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.events import Silent

# CliRunner.invoke builds the click command from the Typer app on every call: 60-120 ms
# of signature inspection, most of a contract test's time and about a minute of the
# suite's. The app does not change during a session, so each app is built once. (A
# test that replaced a command's own function after the first invoke would not be
# heard: tests patch the library functions the commands import when they run.) Should
# typer rename this private name, the suite only loses the speed.
if hasattr(typer.testing, "_get_command"):
    typer.testing._get_command = functools.cache(typer.testing._get_command)

WORDS = (
    "the a cat dog sat on mat ran far away and then came back home to sleep under "
    "warm red blue sky river stone bright quiet little big old new"
).split()


def make_text(n_chars: int, seed: int = 0) -> str:
    """Deterministic English-like text of about ``n_chars`` characters."""
    rng = random.Random(seed)
    lines, size = [], 0
    while size < n_chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 9))).capitalize() + "."
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)[:n_chars]


# A model small enough to train in milliseconds a step, as command-line options.
_TINY = {"layers": 1, "hidden": 16, "embed": 8, "batch-size": 4, "seq-len": 16, "threads": 1}


def tiny_cli(**changes: object) -> list[str]:
    """The tiny model's options; ``changes`` (``seq_len=4``) replace or add options, and
    a change to None leaves that option out. The one place tests spell them."""
    options = {**_TINY, **{name.replace("_", "-"): value for name, value in changes.items()}}
    return [
        part
        for name, value in options.items()
        if value is not None
        for part in (f"--{name}", str(value))
    ]


TINY_CLI = tiny_cli()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never touch the user's cache; wide, colourless Rich output for stable text."""
    monkeypatch.setenv("CHARRNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(make_text(6000), encoding="utf-8")
    return path


def tiny_config(path: Path | None, **train: object) -> RunConfig:
    """A model small enough to train in well under a second a few dozen steps."""
    settings: dict[str, object] = {
        "batch_size": 4,
        "seq_len": 16,
        "steps": 30,
        "eval_every": 10,
        "save_every": 10,
        "sample_length": 20,
        "lr": 1e-2,
        "threads": 1,
        "device": "cpu",
    }
    settings.update(train)
    return RunConfig(
        data=DataConfig(path=str(path) if path else None, val_frac=0.1),
        model=ModelConfig(cell="gru", num_layers=2, hidden_size=16, embed_size=8),
        train=TrainConfig(**settings),  # type: ignore[arg-type]
    )


class Recorder(Silent):
    """A reporter that keeps every notice and warning, for tests to inspect."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.warnings: list[str] = []

    def notice(self, text: str) -> None:
        self.notices.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def wait_until(
    condition: Callable[[], object], seconds: float, what: str = "not reached in time"
) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(what)


def tiny_run(folder: Path, *, steps: int = 10, chars: int = 4000) -> Path:
    """A run of the tiny model trained ``steps`` steps on our own text, in ``folder``."""
    from charrnn.training.launch import train

    corpus = folder / "t.txt"
    corpus.write_text(make_text(chars), encoding="utf-8")
    out = folder / "run"
    config = tiny_config(corpus, steps=steps, eval_every=steps, save_every=steps)
    train(config, out, reporter=Silent(), cache_dir=folder / "cache")
    return out


@pytest.fixture(scope="session")
def lstm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2x16 LSTM trained 60 steps on our text (with quotes and brackets in it), shared
    by the inspect command's tests and the page's browser test: trained once."""
    from typer.testing import CliRunner

    from charrnn.cli.app import app

    folder = tmp_path_factory.mktemp("lstm-run")
    corpus = folder / "t.txt"
    corpus.write_text(make_text(6000) + '\nsay "hello (there)" twice\n', encoding="utf-8")
    out = folder / "run"
    options = ["--cell", "lstm", "--steps", "60", "--out", str(out), "-q", *tiny_cli(layers=2)]
    options += ["--cache-dir", str(folder / "cache")]
    result = CliRunner().invoke(app, ["train", str(corpus), *options])
    assert result.exit_code == 0, result.output
    return out


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that drives the real browser is in the slow tier, wherever it is written
    (starting chromium costs seconds): ``pytest -m "not slow"`` leaves it to CI."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless chromium for the whole session: a selenium ``WebDriver`` (Debian's
    chromium and chromedriver; .ci/run installs them), window 1200 x 1600, with the
    browser's console readable through ``browser.get_log("browser")``.

    Skips the test, saying why, when selenium or the browser is absent. Tests share it:
    each opens its own page with ``browser.get(...)``; one that resizes the window or
    leaves state behind puts it back.
    """
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    chromedriver = shutil.which("chromedriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not (chromedriver and chromium):
        pytest.skip(
            "no headless browser: apt-get install chromium chromium-driver (CI installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()
