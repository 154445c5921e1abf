"""Named corpora: bundled, generated, built from this machine, or downloaded.

* bundled — texts in ``corpora/`` that we wrote (``hello``);
* generated — :mod:`charrnn.data.generators`, made on demand with a seed;
* built from this machine — ``python-stdlib``, the running interpreter's own standard
  library: real text on every machine that has Python, needing no download — our
  offline stand-in for the Linux source that char-rnn made famous;
* download — the classic corpora, fetched once into the cache and verified.

``charrnn train corpus:NAME`` (and ``vocab``) accept any of them by name.
"""

from __future__ import annotations

import hashlib
import os
import re
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from charrnn.data.download import Progress, Unreachable, extract_member, fetch, verify
from charrnn.data.generators import GENERATORS, Generated, generate
from charrnn.data.sources import read_manifest
from charrnn.data.text import default_cache_dir
from charrnn.errors import ConfigError, CorpusError
from charrnn.events import SILENT, Reporter
from charrnn.files import atomic_write_text, output_target, write_output

PREFIX = "corpus:"

DEFAULT_CORPUS = "python-stdlib"
NAMES_CORPUS = "python-names"  # a list: learn it with --docs lines
DEFAULT_STDLIB_MB = 4.0

# Folders of the standard library that hold tests, data or third-party code.
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "dist-packages"}


def bundled_dir() -> Path:
    """Folder of the bundled corpora: inside the installed package, else the repo's."""
    package = Path(__file__).resolve().parents[1]  # charrnn/, two up from data/catalog.py
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


_DEFINED = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


def build_names_text() -> str:
    """The function and class names the standard library defines, one per line, sorted
    (dunder methods left out: they are the same few everywhere)."""
    names: set[str] = set()
    for _, path in stdlib_files():
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        names.update(n for n in _DEFINED.findall(source) if not n.startswith("__"))
    if not names:
        raise CorpusError("found no standard-library sources to build the names corpus")
    return "".join(f"{name}\n" for name in sorted(names))


def names_corpus(cache_dir: Path | None = None) -> Path:
    """The names list as a file in the cache, built once per Python version."""
    version = sysconfig.get_python_version()
    target = (cache_dir or default_cache_dir()) / "stdlib" / f"python{version}-names.txt"
    if not target.is_file():
        write_atomic(target, build_names_text())
    return target


def stdlib_corpus(max_mb: float = DEFAULT_STDLIB_MB, cache_dir: Path | None = None) -> Path:
    """The default corpus as a file in the cache, built once per Python version and size."""
    version = sysconfig.get_python_version()
    folder = (cache_dir or default_cache_dir()) / "stdlib"
    target = folder / f"python{version}-stdlib-{max_mb:g}mb.txt"
    if target.is_file():
        return target
    write_atomic(target, build_stdlib_text(max_mb))
    return target


# -- downloads ------------------------------------------------------------------------


@dataclass(frozen=True)
class Download:
    """A classic corpus on the web: where it is and how to check what arrives.

    ``size``/``sha256`` describe the final text; for a zipped corpus ``archive_size``
    describes the zip and ``member`` names the file inside it. A ``None`` hash means no
    published checksum could be established, so only sizes are checked.
    """

    name: str
    url: str
    size: int
    sha256: str | None
    description: str
    member: str | None = None
    archive_size: int | None = None

    @property
    def filename(self) -> str:
        return self.member or f"{self.name}.txt"

    @property
    def check(self) -> str:
        return "sha-256" if self.sha256 else "size only (no published checksum)"


DOWNLOADS: dict[str, Download] = {
    d.name: d
    for d in (
        Download(
            "tinyshakespeare",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            size=1_115_394,
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            description="40,000 lines of Shakespeare (char-rnn's classic); try --val-frac 0.1",
        ),
        Download(
            "enwik8",
            "http://mattmahoney.net/dc/enwik8.zip",
            size=100_000_000,
            sha256=None,
            member="enwik8",
            archive_size=36_445_475,
            description="first 100 MB of English Wikipedia XML (Hutter Prize); train with --bytes",
        ),
        Download(
            "text8",
            "http://mattmahoney.net/dc/text8.zip",
            size=100_000_000,
            sha256=None,
            member="text8",
            archive_size=31_344_016,
            description="enwik8 cleaned to lowercase a-z and spaces (27 symbols)",
        ),
    )
}


def download_path(entry: Download, cache_dir: Path | None = None) -> Path:
    """Where ``entry`` lives once downloaded."""
    return (cache_dir or default_cache_dir()) / "downloads" / entry.name / entry.filename


def is_downloaded(entry: Download, cache_dir: Path | None = None) -> bool:
    path = download_path(entry, cache_dir)
    return path.is_file() and path.stat().st_size == entry.size


def _download_status(entry: Download, cache_dir: Path | None) -> str:
    """ "downloaded" only for a copy that passes its size and SHA-256 check."""
    path = download_path(entry, cache_dir)
    if not path.is_file():
        return "not downloaded"
    problem = verify(path, size=entry.size, sha256=entry.sha256)
    return "downloaded" if problem is None else f"damaged ({problem}): remove {path}"


def get_download(
    entry: Download, cache_dir: Path | None = None, *, progress: Progress | None = None
) -> Path:
    """Download, verify and (for zips) unpack ``entry``; reuse a verified copy.

    A file placed by hand at :func:`download_path` is accepted once it passes the
    same checks.
    """
    dest = download_path(entry, cache_dir)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"cannot create {dest.parent}: {exc.strerror}") from None
    if dest.is_file():
        problem = verify(dest, size=entry.size, sha256=entry.sha256)
        if problem is None:
            return dest
        raise CorpusError(
            f"{dest} is there but {problem}: remove it and run charrnn corpus get {entry.name}"
        )
    hint = (
        f"; without network access, download {entry.url} elsewhere and place "
        + (f"the unzipped {entry.member}" if entry.member else "it")
        + f" at {dest} ({entry.size:,} bytes"
        + (f", sha256 {entry.sha256})" if entry.sha256 else ")")
    )
    try:
        if entry.member is None:
            return fetch(entry.url, dest, size=entry.size, sha256=entry.sha256, progress=progress)
        archive = dest.with_name(entry.name + ".zip")
        if not archive.is_file():
            fetch(entry.url, archive, size=entry.archive_size, sha256=None, progress=progress)
        extract_member(archive, entry.member, dest, size=entry.size, sha256=entry.sha256)
        archive.unlink(missing_ok=True)
        return dest
    except Unreachable as exc:
        raise CorpusError(str(exc) + hint) from None


# -- one list of every corpus --------------------------------------------------------


@dataclass(frozen=True)
class CorpusInfo:
    """A row of ``charrnn corpus list``."""

    name: str
    kind: str
    size: str
    good_for: str
    status: str


def list_corpora(cache_dir: Path | None = None) -> list[CorpusInfo]:
    """Every corpus charrnn knows by name."""
    rows = [
        CorpusInfo(
            path.stem, "bundled", f"{path.stat().st_size:,} B", "the lecture example", "ready"
        )
        for path in sorted(bundled_dir().glob("*.txt"))
    ]
    for spec in GENERATORS.values():
        option = f" (--distance, default {spec.default_distance})" if spec.default_distance else ""
        rows.append(CorpusInfo(spec.name, "generated", "--size", spec.description + option, "make"))
    rows.append(
        CorpusInfo(
            DEFAULT_CORPUS,
            "built from this machine",
            f"--max-mb (default {DEFAULT_STDLIB_MB:g})",
            "the default: Python's standard library source, no download",
            "ready",
        )
    )
    rows.append(
        CorpusInfo(
            NAMES_CORPUS,
            "built from this machine",
            "about 10k lines",
            "function and class names of the standard library, one per line: a list to "
            "train with --docs lines",
            "ready",
        )
    )
    for entry in DOWNLOADS.values():
        status = _download_status(entry, cache_dir)
        rows.append(
            CorpusInfo(
                entry.name,
                "download",
                f"{entry.size / 1e6:,.1f} MB",
                entry.description,
                f"{status}; check: {entry.check}",
            )
        )
    return rows


def materialize_generated(
    name: str, cache_dir: Path | None = None, *, size: int = 1_000_000, seed: int = 0
) -> Path:
    """A generated corpus with default settings as a file in the cache (made once)."""
    folder = (cache_dir or default_cache_dir()) / "generated"
    target = folder / f"{name}-{size}-seed{seed}.txt"
    if target.is_file():
        return target
    generated = generate(name, size=size, seed=seed)
    write_atomic(target, generated.text)
    return target


def download_entry(name: str) -> Download:
    """The downloadable corpus called ``name``, or a ConfigError listing them."""
    if name not in DOWNLOADS:
        raise ConfigError(
            f"no downloadable corpus named {name!r}: choose one of {', '.join(DOWNLOADS)}"
        )
    return DOWNLOADS[name]


def make_corpus(
    name: str,
    out: Path,
    *,
    size: int,
    seed: int = 0,
    distance: int | None = None,
    max_mb: float | None = None,
    overwrite: bool = False,
) -> Generated | None:
    """Write corpus ``name`` to ``out`` (by the rule of
    :func:`charrnn.files.output_target`): a generated one (returned, with its floor) or
    the standard library's source (None)."""
    output_target(out, overwrite=overwrite)  # refused before the work, not after
    if name == DEFAULT_CORPUS:
        write_output(out, build_stdlib_text(max_mb or DEFAULT_STDLIB_MB), overwrite=overwrite)
        return None
    if name == NAMES_CORPUS:
        write_output(out, build_names_text(), overwrite=overwrite)
        return None
    made = generate(name, size=size, seed=seed, distance=distance)
    write_output(out, made.text, overwrite=overwrite)
    return made


def write_atomic(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` via a temporary file in the same folder."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, text)
    except OSError as exc:
        raise CorpusError(f"cannot write {target}: {exc.strerror}") from None


def resolve_named(
    name: str,
    *,
    max_mb: float = DEFAULT_STDLIB_MB,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    reporter: Reporter = SILENT,
) -> Path:
    """The file of a corpus known by name (downloading or generating it if needed)."""
    if name == DEFAULT_CORPUS:
        return stdlib_corpus(max_mb, cache_dir)
    if name == NAMES_CORPUS:
        return names_corpus(cache_dir)
    if name in GENERATORS:
        return materialize_generated(name, cache_dir)
    if name in DOWNLOADS:
        entry = DOWNLOADS[name]
        if not is_downloaded(entry, cache_dir):
            reporter.notice(f"downloading {name} from {entry.url}")
        return get_download(entry, cache_dir, progress=progress)
    try:
        return bundled_corpus(name)
    except CorpusError:
        known = [c.name for c in list_corpora(cache_dir)]
        raise CorpusError(
            f"no corpus named {name!r}; known: {', '.join(known)} (charrnn corpus list)"
        ) from None


def corpus_name(file: Path | str | None) -> str:
    """The short name a FILE argument gives its corpus (used to name run folders)."""
    if file is None:
        return DEFAULT_CORPUS
    text = str(file)
    if text.startswith(PREFIX):
        return text[len(PREFIX) :]
    joined = read_manifest(Path(text))  # files or a folder joined into one: its name
    if joined is not None and isinstance(joined.get("name"), str):
        return Path(joined["name"]).stem or "corpus"
    return Path(text).stem or "corpus"


def resolve_corpus(
    file: Path | str | None,
    *,
    max_mb: float = DEFAULT_STDLIB_MB,
    cache_dir: Path | None = None,
    reporter: Reporter = SILENT,
) -> tuple[Path, str]:
    """Turn a FILE argument into (path, corpus name).

    None means the default corpus; ``corpus:NAME`` a corpus known by name; anything
    else a path.
    """
    if file is None:
        return stdlib_corpus(max_mb, cache_dir), DEFAULT_CORPUS
    text = str(file)
    if text.startswith(PREFIX):
        name = text[len(PREFIX) :]
        return resolve_named(name, max_mb=max_mb, cache_dir=cache_dir, reporter=reporter), name
    return Path(file), corpus_name(file)
