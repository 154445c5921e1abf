"""A non-editable install must ship the bundled corpora inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from charrnn.data.catalog import bundled_corpus, bundled_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # pip builds the wheel in a process of its own
def test_wheel_contains_the_bundled_corpora(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("charrnn-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "charrnn/_bundled/hello.txt" in names
    package = Path(__file__).parents[1] / "charrnn"
    modules = {f"charrnn/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")}
    assert len(modules) > 40 and modules <= set(names), modules - set(names)
    # the inspect page's style and script are read from the package at run time
    assets = {"charrnn/inspection/assets/inspect.js", "charrnn/inspection/assets/inspect.css"}
    # and so are the web export's (charrnn export --format web)
    assets |= {"charrnn/sharing/assets/web.js", "charrnn/sharing/assets/web.css"}
    assert assets <= set(names)


def test_bundled_hello_corpus_is_found() -> None:
    assert (bundled_dir() / "hello.txt").is_file()
    assert bundled_corpus("hello").read_text() == "hello"
