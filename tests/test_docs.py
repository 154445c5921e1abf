"""The documentation holds together: the site builds with ``mkdocs build --strict`` (a
broken link, a missing page or a page left out of the nav fails it), and every test,
module and file the README and docs/ cite exists — ``tests/test_x.py::name`` (and a
following ``::name`` for the same file), ``charrnn/wing/module.py``, a wing-relative
``wing/module.py``, and dotted ``charrnn.wing.module.name``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "charrnn"

FILE_PATH = re.compile(r"(?<![\w./-])((?:charrnn|tests|benchmarks|scripts)/[\w/.-]*\w)")
TEST_REF = re.compile(r"(?<![\w./-])(tests/test_\w+\.py)?::(\w+)")
DOTTED = re.compile(r"(?<![\w./-])(charrnn(?:\.\w+)+)")
WING_PATH = re.compile(r"(?<![\w./-])(\w+/[\w/]*\w+\.py)\b")
# Not citations: a placeholder (`cli/NAME.py`), a file a command writes
# (`benchmarks/results.json`), a file name that starts like the package (`charrnn.json`).
PLACEHOLDER = re.compile(r"[A-Z]{2,}")
WRITTEN = (".json", ".jsonl", ".png", ".html", ".onnx", ".pt", ".toml", ".txt")


def cited(token: str) -> bool:
    return not PLACEHOLDER.search(token) and not token.endswith(WRITTEN)


def documents() -> list[Path]:
    """The README and every page under docs/ (the changelog names what used to be)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@cache
def defined_tests(path: Path) -> frozenset[str]:
    """The test functions (and test classes' methods) a test file defines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return frozenset(names)


@cache
def top_level_names(path: Path) -> frozenset[str]:
    """Names a module defines or imports at its top level (and its ``__all__``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
                if isinstance(target, ast.Name) and target.id == "__all__":
                    names |= set(ast.literal_eval(node.value))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return frozenset(names)


def module_file(dotted: str) -> Path | None:
    """``charrnn.data.vocab`` -> its file (a module or a package's ``__init__``)."""
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def dotted_exists(dotted: str) -> bool:
    """A module, or a module followed by one name it defines (a class's attribute
    after that is not checked)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        found = module_file(".".join(parts[:cut]))
        if found is not None:
            rest = parts[cut:]
            return not rest or rest[0] in top_level_names(found)
    return False


def missing_citations(text: str) -> list[str]:
    """What ``text`` cites that does not exist, one entry each."""
    missing = []
    for line in text.splitlines():
        last_file: str | None = None
        for match in TEST_REF.finditer(line):
            file, name = match.group(1) or last_file, match.group(2)
            if file is None:
                continue  # '::' with no test file before it on the line: not a test id
            last_file = file
            path = ROOT / file
            if not path.is_file():
                missing.append(f"{file} (no such file)")
            elif name not in defined_tests(path):
                missing.append(f"{file}::{name}")
        for match in FILE_PATH.finditer(line):
            path = match.group(1)
            if cited(path) and not (ROOT / path.rstrip("/")).exists():
                missing.append(path)
        for match in WING_PATH.finditer(line):
            path = match.group(1)
            wing = path.split("/")[0]
            if cited(path) and (PACKAGE / wing).is_dir() and not (PACKAGE / path).is_file():
                missing.append(path)
        for match in DOTTED.finditer(line):
            dotted = match.group(1)
            if cited(dotted) and not dotted_exists(dotted):
                missing.append(dotted)
    return missing


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_test_module_and_file_exists(document: Path) -> None:
    missing = missing_citations(document.read_text(encoding="utf-8"))
    assert not missing, f"{document.relative_to(ROOT)} cites what does not exist: {missing}"


def test_the_citation_check_can_fail() -> None:
    text = (
        "`tests/test_layout.py::test_no_import_circle_even_type_only`, `::no_such_test`; "
        "`tests/test_nothing.py`; `charrnn/model/stepper.py`, `charrnn/stepper.py`; "
        "`model/kernels.py`, `model/nothing.py`; `charrnn.compare.run.compare`, "
        "`charrnn.compare.compare`, `charrnn.layering.layered`, `charrnn.config.layered`, "
        "`charrnn.stream`, `charrnn.nothing`; `cli/NAME.py`, `benchmarks/results.json`, "
        "`charrnn.json`"
    )
    assert missing_citations(text) == [
        "tests/test_layout.py::no_such_test",
        "tests/test_nothing.py",
        "charrnn/stepper.py",
        "model/nothing.py",
        "charrnn.compare.compare",
        "charrnn.config.layered",
        "charrnn.nothing",
    ]


MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def broken_links(text: str, base: Path) -> list[str]:
    """Relative Markdown links in ``text`` (read from ``base``) whose file is missing;
    web addresses and in-page anchors are left alone."""
    broken = []
    for target in MARKDOWN_LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (base / target.split("#")[0]).exists():
            broken.append(target)
    return broken


def test_the_readme_links_to_pages_that_exist() -> None:
    """mkdocs checks the links between pages under docs/; the README is outside it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert not broken_links(readme, ROOT)
    assert broken_links("[a](docs/nothing.md) [b](https://x.org) [c](#top)", ROOT) == [
        "docs/nothing.md"
    ]


def nav_pages(entries: object) -> list[str]:
    """Every page file a mkdocs nav names, at any depth."""
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, list):
        return [page for entry in entries for page in nav_pages(entry)]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in nav_pages(value)]
    return []


def test_every_page_under_docs_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config.get("strict") is True
    in_nav = set(nav_pages(config["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages <= in_nav, f"pages missing from mkdocs.yml's nav: {sorted(pages - in_nav)}"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link, a missing anchor or a nav entry with
    no page fails (about a second)."""
    pytest.importorskip("mkdocs", reason="mkdocs is in the test extra")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "commands" / "train" / "index.html").is_file()
