"""One version, defined once (charrnn/_version.py): ``charrnn --version``, the package
metadata a build writes, the installed metadata (where the installed charrnn is this
checkout) and CHANGELOG.md's top entry all name it."""

from __future__ import annotations

import json
import re
from importlib import metadata
from os import PathLike
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from typer.testing import CliRunner

from charrnn._version import __version__
from charrnn.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
# Keep a Changelog: "## [0.4.0] - 2026-12-04"; "## [Unreleased]" may stand above it.
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", re.MULTILINE)


def changelog_releases(text: str) -> list[str]:
    """The released versions a Keep a Changelog file lists, newest first."""
    return RELEASE.findall(text)


def test_the_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__), __version__


def test_the_command_prints_the_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"charrnn {__version__}"


def test_the_changelog_top_entry_is_this_version() -> None:
    releases = changelog_releases((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert releases, "CHANGELOG.md lists no release in the '## [x.y.z] - date' form"
    assert releases[0] == __version__
    assert len(set(releases)) == len(releases), "a version is listed twice"


def test_the_changelog_parser_can_fail() -> None:
    text = "# Changelog\n\n## [Unreleased]\n\n## [0.2.0] - 2026-11-23\n\n## [0.1.0] - 2026-11-22\n"
    assert changelog_releases(text) == ["0.2.0", "0.1.0"]
    assert changelog_releases("## 0.4.0\n") == []


def test_the_build_metadata_reads_the_version_from_one_place() -> None:
    """What a fresh install gets: hatchling's metadata for this tree, read from
    pyproject.toml, which takes the version from charrnn/_version.py."""
    hatchling = pytest.importorskip("hatchling.metadata.core")
    from hatchling.plugin.manager import PluginManager

    project = hatchling.ProjectMetadata(str(ROOT), PluginManager())
    assert "version" in project.core.dynamic  # not a second copy in pyproject.toml
    assert project.version == __version__


def _installed_from(dist: metadata.Distribution) -> Path | None:
    """The folder a pip install of a local checkout came from (PEP 610), else None."""
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    url = urlparse(json.loads(raw).get("url", ""))
    return Path(unquote(url.path)).resolve() if url.scheme == "file" else None


def test_the_installed_metadata_agrees_when_installed_from_here() -> None:
    dist = metadata.distribution("charrnn")
    source = _installed_from(dist)
    if source != ROOT:
        pytest.skip(f"the installed charrnn comes from {source}, not this checkout")
    assert dist.version == __version__


def test_the_install_source_is_read_from_pep_610(tmp_path: Path) -> None:
    """The check above runs only where the installed charrnn is this checkout; the
    reading of ``direct_url.json`` that decides it is checked here."""

    class Installed(metadata.Distribution):
        def __init__(self, direct_url: str | None) -> None:
            self.direct_url = direct_url

        def read_text(self, filename: str) -> str | None:
            return self.direct_url if filename == "direct_url.json" else None

        def locate_file(self, path: str | PathLike[str]) -> Path:
            return tmp_path / path

    url = json.dumps({"url": tmp_path.as_uri(), "dir_info": {"editable": True}})
    assert _installed_from(Installed(url)) == tmp_path.resolve()
    assert _installed_from(Installed(json.dumps({"url": "https://x.org/c.whl"}))) is None
    assert _installed_from(Installed(None)) is None
