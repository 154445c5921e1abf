"""Named corpora: the ones bundled in ``corpora/`` and the embedded default.

The embedded default, ``python-stdlib``, is the running interpreter's own standard
library: real text on every machine that has Python, needing no download — our
offline stand-in for the Linux source that char-rnn made famous.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
import uuid
from pathlib import Path

from charrnn.corpus import default_cache_dir
from charrnn.errors import CorpusError

DEFAULT_CORPUS = "python-stdlib"
DEFAULT_STDLIB_MB = 4.0

# Folders of the standard library that hold tests, data or third-party code.
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "dist-packages"}


def bundled_dir() -> Path:
    """Folder of the bundled corpora: inside the installed package, else the repo's."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_bundled", package.parent / "corpora"):
        if candidate.is_dir():
            return candidate
    raise CorpusError("the bundled corpora are missing from this installation")


def bundled_corpus(name: str) -> Path:
    """Path of the bundled corpus ``name`` (a file ``corpora/<name>.txt``)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise CorpusError(f"invalid corpus name {name!r}")
    path = bundled_dir() / f"{name}.txt"
    if not path.is_file():
        raise CorpusError(f"no bundled corpus named {name!r}")
    return path


def stdlib_files() -> list[tuple[str, Path]]:
    """The standard library's ``.py`` files outside test folders, as (relative, path)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found: list[tuple[str, Path]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith(("test", ".")))
        for name in sorted(files):
            if name.endswith(".py") and not name.startswith("test_"):
                path = Path(folder, name)
                found.append((path.relative_to(root).as_posix(), path))
    return found


def build_stdlib_text(max_mb: float = DEFAULT_STDLIB_MB) -> str:
    """Concatenate standard-library sources up to ``max_mb`` megabytes.

    Files are picked in the order of a hash of their path — a fixed, even spread
    over the whole library rather than its alphabetically first packages — and
    written in path order, each after a ``# file: <path>`` line.
    """
    if max_mb <= 0:
        raise CorpusError(f"--max-mb must be positive, got {max_mb}")
    budget = int(max_mb * 1_000_000)
    files = stdlib_files()
    by_hash = sorted(files, key=lambda item: hashlib.sha1(item[0].encode()).hexdigest())
    chosen: list[tuple[str, str]] = []
    used = 0
    for rel, path in by_hash:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        piece = f"# file: {rel}\n{source.rstrip()}\n\n"
        size = len(piece.encode("utf-8"))
        if used + size > budget:
            continue
        chosen.append((rel, piece))
        used += size
    if not chosen:
        raise CorpusError("found no standard-library sources to build the default corpus")
    return "".join(piece for _, piece in sorted(chosen))


def stdlib_corpus(max_mb: float = DEFAULT_STDLIB_MB, cache_dir: Path | None = None) -> Path:
    """The default corpus as a file in the cache, built once per Python version and size."""
    version = sysconfig.get_python_version()
    folder = (cache_dir or default_cache_dir()) / "stdlib"
    target = folder / f"python{version}-stdlib-{max_mb:g}mb.txt"
    if target.is_file():
        return target
    text = build_stdlib_text(max_mb)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            temp.write_text(text, encoding="utf-8")
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
    except OSError as exc:
        raise CorpusError(f"cannot write the default corpus to {folder}: {exc.strerror}") from None
    return target


def resolve_corpus(
    file: Path | None, *, max_mb: float = DEFAULT_STDLIB_MB, cache_dir: Path | None = None
) -> tuple[Path, str]:
    """Turn a FILE argument into (path, corpus name); no FILE means the default corpus."""
    if file is None:
        return stdlib_corpus(max_mb, cache_dir), DEFAULT_CORPUS
    return Path(file), Path(file).stem or "corpus"
