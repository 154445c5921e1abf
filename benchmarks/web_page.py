"""What the page ``charrnn export --format web`` writes costs and runs at:
``python -m benchmarks.web_page RUN [RUN ...]``.

For each run: the page's size (and whether its weights went to float16), the time the
page takes to decode its weights, and the characters per second it writes in headless
chromium (``LENGTH`` characters at temperature 0.8), beside charrnn's own one-stream
sampling rate (PyTorch, fp32, one thread as the page has one) in this process. The two
are measured in turn, ``ROUNDS`` times, and the best of each is kept: on a shared
machine the best is the run least disturbed by others. Needs chromium and
chromium-driver. Reports, never asserts; the machine is printed with the figures.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.run import machine
from charrnn.checkpoint import load_model
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.sharing.export import export

LENGTH = 2000
STATUS = "return document.getElementById('status').dataset."
ROUNDS = 3


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,800"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def _wait(driver: Any, state: str, seconds: float = 600.0) -> None:
    deadline = time.monotonic() + seconds
    script = "return document.getElementById('status').dataset.state"
    while driver.execute_script(script) != state:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never reached {state!r}")
        time.sleep(0.05)


def page_load(driver: Any, page: Path) -> float:
    """Open the page; the milliseconds it took to decode its weights."""
    driver.get(page.as_uri())
    _wait(driver, "ready")
    return float(driver.execute_script(STATUS + "loadMs"))


def page_rate(driver: Any) -> float:
    """The open page's characters/s over ``LENGTH`` characters."""
    driver.execute_script(
        "document.getElementById('text').value = 'ROMEO:';"
        "document.getElementById('temperature').value = '0.8';"
        f"document.getElementById('length').value = '{LENGTH}';"
    )
    driver.find_element("id", "generate").click()
    _wait(driver, "done")
    return float(driver.execute_script(STATUS + "rate"))


def torch_rate(model: CharRNN, vocab: Vocab) -> float:
    """charrnn's own rate for one stream (``charrnn sample``'s path), characters/s."""
    began = time.perf_counter()
    generate(model, vocab, length=LENGTH, prime="ROMEO:", settings=SampleSettings(0.8), seed=0)
    return LENGTH / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    runs = parser.parse_args().runs
    torch.set_num_threads(1)  # the page runs on one thread too
    console = Console(width=140)
    title = f"the web page, {LENGTH} characters at temperature 0.8, best of {ROUNDS}"
    table = Table(title=title)
    for heading in ("model", "parameters", "page", "weights", "load", "page chars/s",
                    "charrnn chars/s", "page / charrnn"):  # fmt: skip
        table.add_column(heading, justify="right")
    driver = _browser()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for run in runs:
                page = export(run, Path(folder) / f"{run.name}.html", "web")
                html = page.read_text(encoding="utf-8")
                precision = "float16" if '"precision": "float16"' in html else "float32"
                load_ms = page_load(driver, page)
                model, vocab, _ = load_model(run)
                generate(model, vocab, length=50, seed=0)  # warm-up
                rates, references = [], []
                for _ in range(ROUNDS):
                    rates.append(page_rate(driver))
                    references.append(torch_rate(model, vocab))
                rate, reference = max(rates), max(references)
                m = model.config
                table.add_row(
                    f"{m.cell} {m.num_layers}x{m.hidden_size}",
                    f"{model.num_parameters:,}",
                    f"{page.stat().st_size / 1e6:.2f} MB",
                    precision,
                    f"{load_ms:.0f} ms",
                    f"{rate:,.0f}",
                    f"{reference:,.0f}",
                    f"{rate / reference:.2f}",
                )
    finally:
        driver.quit()
    console.print(table)
    console.print(machine())


if __name__ == "__main__":
    main()
