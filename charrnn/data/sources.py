"""The inputs people have, made into one corpus file: a folder, several files, a pipe.

``charrnn train A.txt B.txt``, ``charrnn train poems/`` and ``cat *.txt | charrnn
train -`` all end as one regular file in the cache, which everything downstream
reads as it reads a single text (encoding, caching, splitting):

- the files, in a stable order (sorted paths; a folder walked in sorted order with
  git's rules in a checkout and its hidden files left out, see
  :mod:`charrnn.data.folders`), are joined with a newline after any that lacks one;
- binary files (a NUL byte in the first 8 KiB, git's test), files that do not decode,
  empty ones and anything not a regular file are skipped and counted (``strict``:
  refused, naming the first); what git's rules and the hidden rule leave out is
  counted beside them;
- a manifest beside the joined file lists every file with its size, SHA-256 and
  where it starts (in characters and in bytes), so training can drop the carried
  state at each boundary and a resumed run can check that nothing changed (nor was
  added), and counts what was left out by reason;
- standard input is read once into the cache, atomically and capped, and refused
  like a file in a folder would be skipped (binary, or not in the encoding).

A single regular file is returned as it is: nothing is copied.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import sys
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from charrnn.data.folders import HIDDEN, IGNORED, NOT_REGULAR, list_folder
from charrnn.data.text import default_cache_dir
from charrnn.errors import CorpusError
from charrnn.events import SILENT, Reporter
from charrnn.files import atomic_file, atomic_write_text

STDIN = "-"
STDIN_LIMIT = 2**30  # bytes read from a pipe before it is refused (1 GiB)
BINARY_PROBE = 8192  # bytes looked at for a NUL
MANIFEST_SUFFIX = ".sources.json"
STDIN_NAME = "standard input"  # how errors name a piped corpus (not its cache copy)
BINARY, UNDECODABLE, EMPTY = "binary", "undecodable", "empty"
# Every reason a file is left out, in the order reports list them.
REASONS = (BINARY, UNDECODABLE, EMPTY, NOT_REGULAR, HIDDEN, IGNORED)


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
    skipped: dict[str, int]  # reason (one of REASONS) -> count, only those that occur

    def describe(self) -> str:
        return describe_sources(len(self.files), self.skipped)


def describe_sources(files: int, skipped: dict[str, int]) -> str:
    """What a joined corpus holds and left out: "3 files (skipped 1 binary, 2 hidden)"."""
    left = left_out_text(skipped)
    return f"{files:,} file{'' if files == 1 else 's'}" + (f" (skipped {left})" if left else "")


def left_out_text(skipped: dict[str, int]) -> str:
    """What was left out, by reason ("1 binary, 2 hidden; --include-hidden reads
    them"), or "" when nothing was."""
    hint = "; --include-hidden reads them" if skipped.get(HIDDEN) else ""
    return _counted(skipped, empty="") + hint


def resolve_inputs(
    inputs: Sequence[Path | str],
    *,
    encoding: str = "utf-8",
    strict: bool = False,
    hidden: bool = False,
    byte_level: bool = False,
    cache_dir: Path | None = None,
    stdin: BinaryIO | None = None,
    reporter: Reporter = SILENT,
) -> Path | None:
    """The one corpus file ``inputs`` stand for: None (the default corpus) for none,
    a single regular file itself, else the joined (or read-from-stdin) copy in the
    cache. Reports what was gathered and skipped.

    ``hidden``: read a folder's hidden files too. ``byte_level``: standard input
    need not decode (it is read as bytes)."""
    given = [str(item) for item in inputs]
    if not given:
        return None
    if given == [STDIN]:
        return read_stdin(
            stdin or sys.stdin.buffer,
            cache_dir=cache_dir,
            encoding=None if byte_level else encoding,
            reporter=reporter,
        )
    if STDIN in given:
        raise CorpusError("'-' (standard input) cannot be joined with other files")
    if len(given) == 1 and not Path(given[0]).is_dir():
        return Path(given[0])
    gathered = gather(given, encoding=encoding, strict=strict, hidden=hidden, cache_dir=cache_dir)
    reporter.notice(f"corpus {gathered.name}: {gathered.describe()}")
    return gathered.path


def read_stdin(
    stream: BinaryIO,
    *,
    cache_dir: Path | None = None,
    limit: int = STDIN_LIMIT,
    encoding: str | None = "utf-8",
    reporter: Reporter = SILENT,
) -> Path:
    """Standard input, read once into the cache (named by its SHA-256, written
    atomically, at most ``limit`` bytes); the path of that copy.

    Refused, as "standard input", where a file in a folder would be skipped: binary
    (a NUL byte in the first 8 KiB) or, unless ``encoding`` is None (a byte-level
    run), not valid ``encoding``."""
    if hasattr(stream, "isatty") and stream.isatty():
        raise CorpusError("'-' reads the corpus from standard input: pipe a text into it")
    folder = (cache_dir or default_cache_dir()) / "stdin"
    folder.mkdir(parents=True, exist_ok=True)
    digest, total = hashlib.sha256(), 0
    check = _StreamCheck(encoding)
    staging = folder / f".incoming-{uuid.uuid4().hex}.txt"
    with atomic_file(staging) as out:
        while chunk := stream.read(2**20):
            total += len(chunk)
            if total > limit:
                raise CorpusError(f"standard input holds over {limit:,} bytes: save it to a file")
            check.feed(chunk)
            digest.update(chunk)
            out.write(chunk)
        if total:
            check.feed(b"", final=True)
    if total == 0:
        staging.unlink(missing_ok=True)
        raise CorpusError("standard input was empty")
    target = folder / f"stdin-{digest.hexdigest()[:16]}.txt"
    os.replace(staging, target)
    reporter.notice(f"read {total:,} bytes from standard input into {target}")
    return target


class _StreamCheck:
    """Standard input checked as it streams past, as :func:`unusable` checks a file."""

    def __init__(self, encoding: str | None) -> None:
        self.probed = 0  # bytes looked at for a NUL so far
        self.offset = 0
        try:
            self.decoder = (
                codecs.getincrementaldecoder(encoding)("strict") if encoding is not None else None
            )
        except LookupError:
            raise CorpusError(f"unknown encoding {encoding!r}") from None
        self.encoding = encoding

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        if self.probed < BINARY_PROBE:
            if b"\0" in chunk[: BINARY_PROBE - self.probed]:
                raise CorpusError(
                    f"{STDIN_NAME}: binary (a NUL byte in its first {BINARY_PROBE:,} bytes, "
                    "as a file in a folder is skipped); pipe a text"
                )
            self.probed += len(chunk)
        if self.decoder is not None:
            try:
                self.decoder.decode(chunk, final=final)
            except UnicodeDecodeError as exc:
                at = self.offset - (len(exc.object) - len(chunk)) + exc.start
                raise CorpusError(
                    f"{STDIN_NAME}: invalid {self.encoding} at byte offset {at} ({exc.reason}); "
                    "pass --encoding NAME for another codec, or --bytes"
                ) from None
        self.offset += len(chunk)


def gather(
    inputs: Sequence[str],
    *,
    encoding: str = "utf-8",
    strict: bool = False,
    hidden: bool = False,
    cache_dir: Path | None = None,
) -> Gathered:
    """Join the files of ``inputs`` (files and folders) into one cached file, each
    kept in ``encoding``; ``hidden``: a folder's hidden files too (see
    :func:`charrnn.data.folders.list_folder` for what a folder gives)."""
    files, left_out = walk(inputs, hidden=hidden)
    odd = left_out[NOT_REGULAR]
    if strict and odd:
        raise CorpusError(
            f"{', '.join(inputs)}: {odd:,} entr{'y is' if odd == 1 else 'ies are'} not a "
            "regular file (a FIFO, socket, device, broken link, or a link in a git "
            "checkout); drop --strict to skip such entries"
        )
    if not files:
        raise CorpusError(
            f"{', '.join(inputs)}: no files to read ({_counted(dict(left_out))} left out)"
            if left_out
            else f"{', '.join(inputs)}: no files to read"
        )
    resolved: dict[Path, Path] = {}
    names = [str(_real(f, resolved)) for f in files]
    # Every option that changes what is gathered is part of the key: a lenient read
    # must never stand in for a --strict one.
    options = {"encoding": encoding, "strict": strict, "hidden": hidden}
    key = hashlib.sha256(json.dumps([options, names]).encode()).hexdigest()
    folder = (cache_dir or default_cache_dir()) / "joined" / key[:24]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "corpus.txt"
    reused = _unchanged(target, files, left_out)
    if reused is not None:
        return reused
    skipped: Counter[str] = Counter(left_out)
    sources: list[Source] = []
    chars = size = 0
    with atomic_file(target) as out:
        for file in files:
            try:
                raw = file.read_bytes()
            except OSError as exc:
                raise CorpusError(f"{file}: cannot read: {exc.strerror}") from None
            why = unusable(raw, encoding)
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
            sources.append(Source(str(file.absolute()), len(raw), mtime, sha, chars, size))
            out.write(data)
            chars += len(text)
            size += len(data)
    if not sources:
        target.unlink(missing_ok=True)
        raise CorpusError(f"{', '.join(inputs)}: no readable text files ({_counted(skipped)})")
    counted = ordered_counts(skipped)
    manifest = {
        "name": _name(inputs),
        "files": [source.__dict__ for source in sources],
        "skipped": counted,
        "seen": _stamps(files),
        # What a resumed run needs to walk the inputs again and see what was added.
        "inputs": [str(Path(item).absolute()) for item in inputs],
        "options": options,
    }
    atomic_write_text(manifest_path(target), json.dumps(manifest, indent=1))
    return Gathered(target, _name(inputs), tuple(sources), counted)


def _unchanged(target: Path, files: list[Path], left_out: Counter[str]) -> Gathered | None:
    """The joined file made before, when the same files have the sizes and
    modification times they had then: nothing is read again (what the walk left out
    is counted afresh)."""
    manifest = read_manifest(target)
    if manifest is None or not target.is_file():
        return None
    try:
        if manifest["seen"] != _stamps(files):
            return None
        sources = tuple(Source(**entry) for entry in manifest["files"])
        read = {str(k): int(v) for k, v in manifest["skipped"].items()}
        skipped = Counter({k: read.get(k, 0) for k in (BINARY, UNDECODABLE, EMPTY)}) + left_out
        return Gathered(target, str(manifest["name"]), sources, ordered_counts(skipped))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def ordered_counts(counts: Counter[str] | dict[str, int]) -> dict[str, int]:
    """The counts that occur, in the order of :data:`REASONS`."""
    return {why: int(counts[why]) for why in REASONS if counts.get(why)}


def _stamps(files: list[Path]) -> list[list[Any]]:
    """Each file's path, size and modification time (what says it is unchanged)."""
    stamps: list[list[Any]] = []
    for file in files:
        st = file.stat()
        stamps.append([str(file.absolute()), st.st_size, st.st_mtime_ns])
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


def unusable(raw: bytes, encoding: str) -> str | None:
    """Why a file's bytes cannot join the corpus (empty, binary, undecodable), or None."""
    if not raw:
        return EMPTY
    if b"\0" in raw[:BINARY_PROBE]:
        return BINARY
    try:
        raw.decode(encoding)
    except UnicodeDecodeError:
        return UNDECODABLE
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    return None


def _counted(skipped: dict[str, int], empty: str = "none found") -> str:
    return ", ".join(f"{n:,} {why}" for why, n in ordered_counts(skipped).items()) or empty


def _name(inputs: Sequence[str]) -> str:
    first = Path(inputs[0]).resolve().name or "corpus"
    return first if len(inputs) == 1 else f"{Path(first).stem}-and-{len(inputs) - 1}-more"


def walk(inputs: Sequence[str], *, hidden: bool = False) -> tuple[list[Path], Counter[str]]:
    """Every file of ``inputs`` once, in a stable order (a folder's as
    :func:`~charrnn.data.folders.list_folder` gives them), and what the folders left
    out, by reason. A file named on its own is read whatever its name."""
    seen: set[Path] = set()
    files: list[Path] = []
    left_out: Counter[str] = Counter()
    resolved: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            listing = list_folder(path, hidden=hidden)
            left_out += listing.left_out
            found = listing.files
        elif path.is_file():
            found = [path]
        elif not path.exists():
            raise CorpusError(f"{path}: no such file or folder")
        else:
            raise CorpusError(f"{path}: not a regular file or a folder")
        for file in found:
            real = _real(file, resolved)
            if real not in seen:
                seen.add(real)
                files.append(file)
    return files, left_out


def _real(file: Path, resolved: dict[Path, Path]) -> Path:
    """``file.resolve()``, with each folder resolved once (``resolved`` remembers them):
    resolving every path of 20,000 files from scratch took seconds."""
    if file.is_symlink():
        return file.resolve()
    parent = resolved.get(file.parent)
    if parent is None:
        parent = resolved[file.parent] = file.parent.resolve()
    return parent / file.name
