"""The inputs people have, made into one corpus file: a folder, several files, a pipe.

``charrnn train A.txt B.txt``, ``charrnn train poems/`` and ``cat *.txt | charrnn
train -`` all end as one regular file in the cache, which everything downstream
reads as it reads a single text (encoding, caching, splitting):

- the files, in a stable order (sorted paths; a folder walked in sorted order, its
  ``.git`` skipped and, in a git checkout, its ``.gitignore`` honoured via
  ``pathspec``), are joined with a newline after any that lacks one;
- binary files (a NUL byte in the first 8 KiB, git's test), files that do not decode
  and empty ones are skipped and counted (``strict``: refused, naming the first);
- a manifest beside the joined file lists every file with its size, SHA-256 and
  where it starts (in characters and in bytes), so training can drop the carried
  state at each boundary and a resumed run can check that nothing changed;
- standard input is read once into the cache, atomically and capped.

A single regular file is returned as it is: nothing is copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from charrnn.data.text import default_cache_dir
from charrnn.errors import CorpusError
from charrnn.events import SILENT, Reporter
from charrnn.files import atomic_file, atomic_write_text

STDIN = "-"
STDIN_LIMIT = 2**30  # bytes read from a pipe before it is refused (1 GiB)
BINARY_PROBE = 8192  # bytes looked at for a NUL
MANIFEST_SUFFIX = ".sources.json"


@dataclass(frozen=True)
class Source:
    """One file of a joined corpus."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    start_char: int  # where its text starts in the joined corpus
    start_byte: int


@dataclass(frozen=True)
class Gathered:
    """What :func:`gather` made: the joined file, its files and what it skipped."""

    path: Path
    name: str
    files: tuple[Source, ...]
    skipped: dict[str, int]  # reason -> count

    def describe(self) -> str:
        skipped = ", ".join(f"{n:,} {why}" for why, n in self.skipped.items() if n)
        return f"{len(self.files):,} files" + (f" (skipped {skipped})" if skipped else "")


def resolve_inputs(
    inputs: Sequence[Path | str],
    *,
    encoding: str = "utf-8",
    strict: bool = False,
    cache_dir: Path | None = None,
    stdin: BinaryIO | None = None,
    reporter: Reporter = SILENT,
) -> Path | None:
    """The one corpus file ``inputs`` stand for: None (the default corpus) for none,
    a single regular file itself, else the joined (or read-from-stdin) copy in the
    cache. Reports what was gathered and skipped."""
    given = [str(item) for item in inputs]
    if not given:
        return None
    if given == [STDIN]:
        return read_stdin(stdin or sys.stdin.buffer, cache_dir=cache_dir, reporter=reporter)
    if STDIN in given:
        raise CorpusError("'-' (standard input) cannot be joined with other files")
    if len(given) == 1 and not Path(given[0]).is_dir():
        return Path(given[0])
    gathered = gather(given, encoding=encoding, strict=strict, cache_dir=cache_dir)
    reporter.notice(f"corpus {gathered.name}: {gathered.describe()}")
    return gathered.path


def read_stdin(
    stream: BinaryIO,
    *,
    cache_dir: Path | None = None,
    limit: int = STDIN_LIMIT,
    reporter: Reporter = SILENT,
) -> Path:
    """Standard input, read once into the cache (named by its SHA-256, written
    atomically, at most ``limit`` bytes); the path of that copy."""
    if hasattr(stream, "isatty") and stream.isatty():
        raise CorpusError("'-' reads the corpus from standard input: pipe a text into it")
    folder = (cache_dir or default_cache_dir()) / "stdin"
    folder.mkdir(parents=True, exist_ok=True)
    digest, total = hashlib.sha256(), 0
    staging = folder / f".incoming-{uuid.uuid4().hex}.txt"
    with atomic_file(staging) as out:
        while chunk := stream.read(2**20):
            total += len(chunk)
            if total > limit:
                raise CorpusError(f"standard input holds over {limit:,} bytes: save it to a file")
            digest.update(chunk)
            out.write(chunk)
    if total == 0:
        staging.unlink(missing_ok=True)
        raise CorpusError("standard input was empty")
    target = folder / f"stdin-{digest.hexdigest()[:16]}.txt"
    os.replace(staging, target)
    reporter.notice(f"read {total:,} bytes from standard input into {target}")
    return target


def gather(
    inputs: Sequence[str],
    *,
    encoding: str = "utf-8",
    strict: bool = False,
    cache_dir: Path | None = None,
) -> Gathered:
    """Join the files of ``inputs`` (files and folders) into one cached file, each
    kept in ``encoding``."""
    files = list(_walk(inputs))
    if not files:
        raise CorpusError(f"{', '.join(inputs)}: no files to read")
    names = [str(f.resolve()) for f in files]
    key = hashlib.sha256(json.dumps([encoding, names]).encode()).hexdigest()
    folder = (cache_dir or default_cache_dir()) / "joined" / key[:24]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "corpus.txt"
    reused = _unchanged(target, files)
    if reused is not None:
        return reused
    skipped = {"binary": 0, "undecodable": 0, "empty": 0}
    sources: list[Source] = []
    chars = size = 0
    with atomic_file(target) as out:
        for file in files:
            try:
                raw = file.read_bytes()
            except OSError as exc:
                raise CorpusError(f"{file}: cannot read: {exc.strerror}") from None
            why = _unusable(raw, encoding)
            if why is not None:
                if strict:
                    raise CorpusError(f"{file}: {why} (drop --strict to skip such files)")
                skipped[why] += 1
                continue
            text = raw.decode(encoding)
            data = raw  # kept in its own encoding: the run reads it with --encoding
            if not text.endswith("\n"):  # each file starts on a line of its own
                text += "\n"
                data += "\n".encode(encoding)
            sha = hashlib.sha256(raw).hexdigest()
            mtime = file.stat().st_mtime_ns
            sources.append(Source(str(file), len(raw), mtime, sha, chars, size))
            out.write(data)
            chars += len(text)
            size += len(data)
    if not sources:
        target.unlink(missing_ok=True)
        raise CorpusError(f"{', '.join(inputs)}: no readable text files ({_counted(skipped)})")
    manifest = {
        "name": _name(inputs),
        "files": [source.__dict__ for source in sources],
        "skipped": skipped,
        "seen": _stamps(files),
    }
    atomic_write_text(manifest_path(target), json.dumps(manifest, indent=1))
    return Gathered(target, _name(inputs), tuple(sources), skipped)


def _unchanged(target: Path, files: list[Path]) -> Gathered | None:
    """The joined file made before, when the same files have the sizes and
    modification times they had then: nothing is read again."""
    manifest = read_manifest(target)
    if manifest is None or not target.is_file():
        return None
    try:
        if manifest["seen"] != _stamps(files):
            return None
        sources = tuple(Source(**entry) for entry in manifest["files"])
        skipped = {str(k): int(v) for k, v in manifest["skipped"].items()}
        return Gathered(target, str(manifest["name"]), sources, skipped)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _stamps(files: list[Path]) -> list[list[Any]]:
    """Each file's path, size and modification time (what says it is unchanged)."""
    stamps: list[list[Any]] = []
    for file in files:
        st = file.stat()
        stamps.append([str(file), st.st_size, st.st_mtime_ns])
    return stamps


def manifest_path(corpus: Path) -> Path:
    return corpus.with_name(corpus.name + MANIFEST_SUFFIX)


def read_manifest(corpus: Path) -> dict[str, Any] | None:
    """The manifest beside a joined corpus, or None for any other file."""
    try:
        data = json.loads(manifest_path(corpus).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def file_starts(corpus: Path, byte_level: bool) -> np.ndarray | None:
    """Where each file of a joined corpus starts, in ids (characters, or bytes for a
    byte-level run); None for a corpus that is one file."""
    manifest = read_manifest(corpus)
    if manifest is None:
        return None
    key = "start_byte" if byte_level else "start_char"
    try:
        starts = np.array([int(f[key]) for f in manifest["files"]], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        return None
    return starts if len(starts) > 1 else None


def _unusable(raw: bytes, encoding: str) -> str | None:
    if not raw:
        return "empty"
    if b"\0" in raw[:BINARY_PROBE]:
        return "binary"
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return "undecodable"
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    return None


def _counted(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {why}" for why, n in skipped.items() if n) or "none found"


def _name(inputs: Sequence[str]) -> str:
    first = Path(inputs[0]).resolve().name or "corpus"
    return first if len(inputs) == 1 else f"{Path(first).stem}-and-{len(inputs) - 1}-more"


def _walk(inputs: Sequence[str]) -> Iterator[Path]:
    """Every file of ``inputs`` once, in a stable order: a folder's files sorted by
    path, ``.git`` skipped, ``.gitignore`` honoured in a git checkout; folders reached
    twice through symbolic links (a loop) are walked once."""
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from _walk_folder(path, seen)
        elif path.is_file():
            if path.resolve() not in seen:
                seen.add(path.resolve())
                yield path
        elif not path.exists():
            raise CorpusError(f"{path}: no such file or folder")
        else:
            raise CorpusError(f"{path}: not a regular file or a folder")


def _walk_folder(root: Path, seen: set[Path]) -> Iterator[Path]:
    ignored = _gitignore(root)
    visited: set[Path] = set()
    found: list[Path] = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = Path(folder).resolve()
        if real in visited:  # a symbolic link back up the tree
            dirs[:] = []
            continue
        visited.add(real)
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in names:
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            if ignored is not None and ignored.match_file(relative):
                continue
            if path.is_file():
                found.append(path)
    for path in sorted(found, key=lambda p: p.relative_to(root).as_posix()):
        if path.resolve() not in seen:
            seen.add(path.resolve())
            yield path


def _gitignore(root: Path) -> Any:
    """The checkout's ``.gitignore`` rules (root file only), or None outside git."""
    rules = root / ".gitignore"
    if not (root / ".git").exists() or not rules.is_file():
        return None
    import pathspec

    lines = rules.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


RUN_SOURCES = "sources.json"  # a run's copy of its joined corpus's manifest


def record_sources(corpus: Path, run: Path) -> None:
    """Keep a joined corpus's list of files and hashes in the run directory."""
    manifest = read_manifest(corpus)
    if manifest is not None:
        listed = {"files": manifest["files"], "skipped": manifest.get("skipped", {})}
        atomic_write_text(run / RUN_SOURCES, json.dumps(listed, indent=1))


def run_sources(run: Path) -> list[dict[str, Any]] | None:
    """The files a run's joined corpus was made of, or None (one file)."""
    try:
        files = json.loads((run / RUN_SOURCES).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return files if isinstance(files, list) else None


def check_sources(run: Path) -> None:
    """Every file a run's joined corpus was made of must still hold what it held:
    resuming on changed files would train on different text."""
    files = run_sources(run)
    if not files:
        return
    changed = []
    for entry in files:
        try:
            path, sha = Path(str(entry["path"])), str(entry["sha256"])
            if hashlib.sha256(path.read_bytes()).hexdigest() != sha:
                changed.append(str(path))
        except (OSError, KeyError, TypeError):
            changed.append(str(entry.get("path", "?")) if isinstance(entry, dict) else "?")
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        raise CorpusError(
            f"{len(changed)} of the run's {len(files)} files changed or went missing "
            f"({shown}); resuming would train on different text (start a new run instead)"
        )
