"""What the page ``charrnn export --format web`` writes costs and runs at:
``python -m benchmarks.web_page RUN [RUN ...]``.

For each run: the page's size (and whether its weights went to float16), the time the
page takes to decode its weights, and the characters per second it writes in headless
chromium (``LENGTH`` characters at temperature 0.8, the median of ``REPEATS``), beside
charrnn's own one-stream sampling rate measured in this process (PyTorch, fp32). Needs
chromium and chromium-driver. Reports, never asserts; the machine is printed with the
figures.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.run import machine
from charrnn.checkpoint import load_model
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.sharing.export import export

LENGTH = 2000
REPEATS = 3


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


def page_rate(driver: Any, page: Path) -> tuple[float, float]:
    """Milliseconds to load the weights, and the median characters/s of the page."""
    driver.get(page.as_uri())
    _wait(driver, "ready")
    load_ms = float(
        driver.execute_script("return document.getElementById('status').dataset.loadMs")
    )
    rates = []
    for _ in range(REPEATS):
        driver.execute_script(
            "document.getElementById('text').value = 'ROMEO:';"
            "document.getElementById('temperature').value = '0.8';"
            f"document.getElementById('length').value = '{LENGTH}';"
        )
        driver.find_element("id", "generate").click()
        _wait(driver, "done")
        rates.append(
            float(driver.execute_script("return document.getElementById('status').dataset.rate"))
        )
    return load_ms, statistics.median(rates)


def torch_rate(run: Path) -> float:
    """charrnn's own rate for one stream (``charrnn sample``'s path), characters/s."""
    model, vocab, _ = load_model(run)
    generate(model, vocab, length=50, seed=0)  # warm-up
    began = time.perf_counter()
    generate(model, vocab, length=LENGTH, prime="ROMEO:", settings=SampleSettings(0.8), seed=0)
    return LENGTH / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    runs = parser.parse_args().runs
    console = Console()
    table = Table(title=f"the web page, {LENGTH} characters at temperature 0.8")
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
                load_ms, rate = page_rate(driver, page)
                reference = torch_rate(run)
                model, _, _ = load_model(run)
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
