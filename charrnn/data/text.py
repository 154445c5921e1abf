"""Read a text file, build its vocabulary, and keep its encoding in a cache.

The file is streamed in chunks, twice: pass 1 decodes and counts symbols (giving the
vocabulary and the content hash), pass 2 writes the ids into a ``.npy`` file that
training then memory-maps. Peak memory is a few chunks, whatever the corpus size.

Cache layout, one folder per (file, encoding, byte-level) under the cache root::

    <cache>/encoded/<key>/meta.json        source size, mtime, sha256, vocab, counts
    <cache>/encoded/<key>/ids-<uuid>.npy   the ids (uint8/16/32)

``meta.json`` names its ids file and is replaced atomically *after* that file is
complete, so a reader always sees a finished encoding or none: an interrupted
encode leaves at most an unreferenced temporary file, removed later.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import stat
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.data.vocab import Vocab, code_points, id_dtype
from charrnn.errors import CorpusError, VocabError
from charrnn.events import SILENT, Reporter
from charrnn.files import atomic_file, atomic_write_text

CHUNK_BYTES = 16 * 2**20
# Codecs that decode every ASCII byte to the same code point (see iter_symbol_chunks).
_ASCII_SUPERSETS = {"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252"}
_CACHE_FORMAT = 1
_STALE_TEMP_S = 3600.0
_ANNOUNCE_ENCODE_BYTES = 20_000_000  # a pause worth a word (about 50 ms per MB)


def default_cache_dir() -> Path:
    """``$CHARRNN_CACHE``, else ``$XDG_CACHE_HOME/charrnn``, else ``~/.cache/charrnn``."""
    if env := os.environ.get("CHARRNN_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charrnn"


@dataclass(frozen=True)
class Corpus:
    """An encoded text: its vocabulary, symbol counts and ids (memory-mapped).

    Attributes:
        name: short name for run folders (the file's stem, or ``python-stdlib``).
        source: the file it was read from.
        vocab: vocabulary of the whole file.
        counts: occurrences of each vocabulary symbol, aligned with ``vocab.symbols``.
        ids: the encoded text, shape (N,), an unsigned dtype; read-only memmap.
        sha256: hash of the file's bytes.
    """

    name: str
    source: Path
    vocab: Vocab
    counts: np.ndarray
    ids: np.ndarray
    sha256: str

    def __len__(self) -> int:
        return len(self.ids)


# -- reading --------------------------------------------------------------------


def check_readable(path: Path) -> os.stat_result:
    """Stat ``path`` as a corpus file, turning every failure into a CorpusError."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CorpusError(f"{path}: no such file") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror}") from None
    if path.is_dir():
        raise CorpusError(f"{path}: is a directory, expected a text file")
    if not stat.S_ISREG(st.st_mode):  # a pipe, FIFO, /dev/stdin or device: read twice, sized
        raise CorpusError(
            f"{path}: is not a regular file (a pipe or a device); charrnn reads a corpus "
            "twice, so save it to a file first"
        )
    if st.st_size == 0:
        raise CorpusError(f"{path}: is empty")
    return st


def _open(path: Path) -> Any:
    try:
        return path.open("rb")
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror}") from None


def iter_symbol_chunks(
    path: Path, *, encoding: str = "utf-8", byte_level: bool = False, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tuple[bytes, np.ndarray]]:
    """Yield ``(raw_bytes, symbols)`` for each chunk (``chunk_bytes``) of the file.

    Symbols are code points (uint32) decoded with ``encoding``, or the bytes
    themselves (uint8) when ``byte_level``. Invalid input raises a CorpusError
    naming the byte offset.
    """
    try:
        decoder = None if byte_level else codecs.getincrementaldecoder(encoding)("strict")
        ascii_superset = codecs.lookup(encoding).name in _ASCII_SUPERSETS
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    offset = 0
    with _open(path) as handle:
        while True:
            try:
                raw = handle.read(chunk_bytes)
            except OSError as exc:
                raise CorpusError(f"{path}: read failed: {exc.strerror}") from None
            final = not raw
            if decoder is None:
                if final:
                    return
                yield raw, np.frombuffer(raw, dtype=np.uint8)
            elif ascii_superset and raw and raw.isascii() and decoder.getstate()[0] == b"":
                # Fast path: in these codecs an ASCII byte is its own code point, so
                # the bytes are the symbols (no decoding, 1 byte per symbol).
                yield raw, np.frombuffer(raw, dtype=np.uint8)
            else:
                try:
                    text = decoder.decode(raw, final=final)
                except UnicodeDecodeError as exc:
                    # exc.object is the decoder's pending bytes followed by this chunk.
                    pending = len(exc.object) - len(raw)
                    at = offset - pending + exc.start
                    hint = "pass --encoding NAME for another codec, or --bytes"
                    raise CorpusError(
                        f"{path}: invalid {encoding} at byte offset {at} ({exc.reason}); {hint}"
                    ) from None
                if text or raw:
                    yield raw, code_points(text)
                if final:
                    return
            offset += len(raw)


def read_text(path: Path, *, encoding: str = "utf-8") -> str:
    """The whole file as a string (for small files: validation text, priming)."""
    check_readable(path)
    return "".join(
        symbols.astype("<u4").tobytes().decode("utf-32-le")
        for _, symbols in iter_symbol_chunks(path, encoding=encoding)
    )


# -- encoding with a cache ------------------------------------------------------


def count_symbols(symbols: np.ndarray) -> np.ndarray:
    """Occurrences of each symbol value (index = value).

    For bytes, counting adjacent pairs as 16-bit values and folding the 256 x 256
    table back is about three times faster than counting bytes one by one.
    """
    if symbols.dtype != np.uint8:
        return np.bincount(symbols)
    even = len(symbols) - len(symbols) % 2
    pairs = np.bincount(symbols[:even].view("<u2"), minlength=65536).reshape(256, 256)
    counts = pairs.sum(axis=0) + pairs.sum(axis=1)  # low bytes + high bytes
    if even < len(symbols):
        counts[symbols[-1]] += 1
    return counts


def _scan(path: Path, encoding: str, byte_level: bool) -> tuple[Vocab, np.ndarray, int, str]:
    """Pass 1: vocabulary, counts, length in symbols, and sha256 of the bytes."""
    digest = hashlib.sha256()
    counts = np.zeros(256 if byte_level else 0x110000, dtype=np.int64)
    total = 0
    for raw, symbols in iter_symbol_chunks(path, encoding=encoding, byte_level=byte_level):
        digest.update(raw)
        if len(symbols):
            chunk_counts = count_symbols(symbols)
            counts[: len(chunk_counts)] += chunk_counts
        total += len(symbols)
    if total == 0:
        raise CorpusError(f"{path}: holds no characters")
    if byte_level:
        vocab = Vocab.bytes_vocab()
    else:
        vocab = Vocab(tuple(int(s) for s in np.flatnonzero(counts)))
    return vocab, counts[list(vocab.symbols)], total, digest.hexdigest()


def _write_ids(
    path: Path,
    target: Path,
    vocab: Vocab,
    total: int,
    encoding: str,
    byte_level: bool,
    source_mode: int,
) -> None:
    """Pass 2: encode into ``target`` (a ``.npy`` file) via a temporary file renamed
    when complete.

    Plain writes, not a memory map: written pages then stay out of this process's
    resident memory, so encoding a large corpus does not grow it.
    """
    dtype = id_dtype(len(vocab))
    with atomic_file(target, readable_as=source_mode) as out:  # no more readable than the text
        header = {
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": (total,),
        }
        np.lib.format.write_array_header_1_0(out, header)
        written = 0
        for _, symbols in iter_symbol_chunks(path, encoding=encoding, byte_level=byte_level):
            try:
                ids = vocab.encode_symbols(symbols, what=str(path), dtype=dtype)
            except VocabError:  # pass 1 saw every symbol: the file changed in between
                raise CorpusError(f"{path}: changed while it was being read; try again") from None
            out.write(ids.tobytes())
            written += len(ids)
        if written != total:
            raise CorpusError(f"{path}: changed while it was being read; try again")


def _cache_key(path: Path, encoding: str, byte_level: bool) -> str:
    ident = f"{path.resolve()}\0{codecs.lookup(encoding).name}\0{byte_level}\0{_CACHE_FORMAT}"
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        ids_path = folder / meta["ids_file"]
        if meta.get("format") != _CACHE_FORMAT or not ids_path.is_file():
            return None
        return dict(meta)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _clean_folder(folder: Path, keep: str) -> None:
    """Remove ids files no longer referenced and temporaries left by killed runs."""
    now = time.time()
    for entry in folder.iterdir():
        if entry.name in (keep, "meta.json"):
            continue
        try:
            # Only files untouched for a while: another process may be writing them.
            if now - entry.stat().st_mtime > (_STALE_TEMP_S if entry.suffix == ".tmp" else 60):
                entry.unlink()
        except OSError:
            pass


def _from_meta(name: str, path: Path, folder: Path, meta: dict[str, Any]) -> Corpus:
    ids = np.load(folder / meta["ids_file"], mmap_mode="r")
    return Corpus(
        name=name,
        source=path,
        vocab=Vocab.from_dict(meta["vocab"]),
        counts=np.asarray(meta["counts"], dtype=np.int64),
        ids=ids,
        sha256=str(meta["sha256"]),
    )


def _cached(
    path: Path, encoding: str, byte_level: bool, cache_dir: Path | None
) -> tuple[os.stat_result, Path, dict[str, Any] | None]:
    """The readable file's status, its cache folder and the cache's record (if any)."""
    st = check_readable(path)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise CorpusError(f"unknown encoding {encoding!r}") from None
    folder = (cache_dir or default_cache_dir()) / "encoded" / _cache_key(path, encoding, byte_level)
    return st, folder, _read_meta(folder)


def load_corpus(
    path: Path,
    *,
    encoding: str = "utf-8",
    byte_level: bool = False,
    cache_dir: Path | None = None,
    name: str | None = None,
    reporter: Reporter = SILENT,
) -> Corpus:
    """Encode ``path`` (or reuse its cached encoding) and return it memory-mapped.

    An unchanged file (same size and mtime, or same content hash) is not encoded
    again; a changed one is. Before encoding a large file it tells ``reporter``, so
    the user knows why there is a pause (about 50 ms per MB).
    """
    path = Path(path)
    st, folder, meta = _cached(path, encoding, byte_level, cache_dir)
    name = name or path.stem or "corpus"
    if meta and meta["size"] == st.st_size and meta["mtime_ns"] == st.st_mtime_ns:
        return _from_meta(name, path, folder, meta)

    if st.st_size > _ANNOUNCE_ENCODE_BYTES:
        reporter.notice(f"encoding {path} (cached for next time)...")
    vocab, counts, total, sha = _scan(path, encoding, byte_level)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"cannot create the corpus cache {folder}: {exc.strerror}") from None
    if meta is None or meta["sha256"] != sha:
        ids_file = f"ids-{uuid.uuid4().hex}.npy"
        try:
            _write_ids(path, folder / ids_file, vocab, total, encoding, byte_level, st.st_mode)
        except OSError as exc:
            raise CorpusError(f"cannot write the corpus cache in {folder}: {exc}") from None
    else:
        ids_file = meta["ids_file"]  # same content, only the mtime moved
    meta = {
        "format": _CACHE_FORMAT,
        "source": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": sha,
        "encoding": encoding,
        "length": total,
        "ids_file": ids_file,
        "vocab": vocab.to_dict(),
        "counts": counts.tolist(),
    }
    try:
        atomic_write_text(folder / "meta.json", json.dumps(meta), readable_as=st.st_mode)
    except OSError as exc:
        raise CorpusError(f"cannot write the corpus cache in {folder}: {exc}") from None
    _clean_folder(folder, keep=ids_file)
    return _from_meta(name, path, folder, meta)


def vocabulary_of(
    path: Path,
    *,
    encoding: str = "utf-8",
    byte_level: bool = False,
    cache_dir: Path | None = None,
) -> tuple[Vocab, np.ndarray]:
    """The vocabulary of ``path`` and each symbol's count, without encoding it.

    From the corpus cache when it is fresh, else one reading pass (``charrnn vocab``
    on a 100 MB text: the speed and memory of counting, with no encoded copy written).
    """
    st, _, meta = _cached(Path(path), encoding, byte_level, cache_dir)
    if meta and meta["size"] == st.st_size and meta["mtime_ns"] == st.st_mtime_ns:
        return Vocab.from_dict(meta["vocab"]), np.asarray(meta["counts"], dtype=np.int64)
    vocab, counts, _, _ = _scan(path, encoding, byte_level)
    return vocab, counts


# -- train / validation split -----------------------------------------------------


def split_ids(ids: np.ndarray, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Split into (train, validation): validation is the last ``val_frac`` of the ids.

    Both are views, so a memory-mapped corpus stays memory-mapped.
    """
    if not 0.0 < val_frac < 1.0:
        raise CorpusError(f"--val-frac must be between 0 and 1 (exclusive), got {val_frac}")
    n_val = int(len(ids) * val_frac)
    if n_val < 2:
        need = int(np.ceil(2 / val_frac))
        raise CorpusError(
            f"the corpus has {len(ids)} characters: too few for a validation split of "
            f"{val_frac:g} (needs at least {need}); use a longer text, a larger --val-frac, "
            "or --val-file"
        )
    return ids[: len(ids) - n_val], ids[len(ids) - n_val :]


def encode_validation_file(
    path: Path,
    vocab: Vocab,
    *,
    encoding: str = "utf-8",
    skip_unknown: bool = False,
    reporter: Reporter = SILENT,
) -> np.ndarray:
    """Encode a separate validation file with the training vocabulary."""
    check_readable(path)
    parts = [
        vocab.encode_symbols(
            symbols,
            what=f"validation file {path}",
            on_unknown="drop" if skip_unknown else "error",
            reporter=reporter,
        )
        for _, symbols in iter_symbol_chunks(path, encoding=encoding, byte_level=vocab.byte_level)
    ]
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if len(ids) < 2:
        raise CorpusError(f"validation file {path} needs at least 2 known characters")
    return ids.astype(id_dtype(len(vocab)))
