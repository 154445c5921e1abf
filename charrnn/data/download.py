"""Verified downloads: resume a partial file, check size and SHA-256, unzip, rename.

A download goes to ``<name>.part`` and only gets its final name after its size (and,
where one is known, its SHA-256) has been checked, so nothing that has not been
verified can pass for complete. An interrupted transfer keeps its ``.part`` file and
the next attempt asks the server for the rest (HTTP ``Range``); a server that ignores
the request sends the whole file again, and that works too.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from charrnn.errors import CorpusError
from charrnn.files import atomic_file

Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)
_CHUNK = 1 << 20


class Unreachable(CorpusError):
    """The server could not be reached or refused the file (the caller may add advice)."""


class Oversized(CorpusError):
    """A download or archive member is larger than the file it should be."""


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, *, size: int | None, sha256: str | None) -> str | None:
    """None when ``path`` has the expected size and hash, else what is wrong."""
    actual = path.stat().st_size
    if size is not None and actual != size:
        return f"it has {actual:,} bytes, expected {size:,}"
    if sha256 is not None and sha256_of(path) != sha256:
        return "its SHA-256 does not match the registry's"
    return None


def fetch(
    url: str,
    dest: Path,
    *,
    size: int | None,
    sha256: str | None,
    timeout: float = 30.0,
    progress: Progress | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part``, and verify it.

    Raises:
        CorpusError: the server cannot be reached, the transfer broke off (the
            partial file is kept for the next attempt), or the file fails its check
            (the partial file is removed).
    """
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is None or have < size:
        _transfer(url, part, have, size, timeout, progress)
    problem = verify(part, size=size, sha256=sha256)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise CorpusError(f"download of {url} failed its check: {problem}; it was removed")
    os.replace(part, dest)
    return dest


def _transfer(
    url: str, part: Path, have: int, size: int | None, timeout: float, progress: Progress | None
) -> None:
    headers = {"User-Agent": "charrnn", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part file is complete
            return
        raise Unreachable(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise Unreachable(f"cannot download {url}: {reason}") from None
    oversized = False
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file
        try:
            with part.open("ab" if resumed else "wb") as out:
                # Never more than the expected size: a server (or anyone on a plain-http
                # path) could otherwise stream without end into the part file.
                while chunk := response.read(
                    _CHUNK if size is None else min(_CHUNK, size + 1 - have)
                ):
                    if size is not None and have + len(chunk) > size:
                        oversized = True
                        break
                    out.write(chunk)
                    have += len(chunk)
                    if progress is not None:
                        progress(have, size)
                out.flush()
                os.fsync(out.fileno())
        except (http.client.HTTPException, OSError) as exc:
            raise CorpusError(
                f"the download of {url} broke off after {have:,} bytes ({type(exc).__name__}); "
                "run the same command again to resume"
            ) from None
    if oversized:
        part.unlink(missing_ok=True)
        raise Oversized(
            f"download of {url} failed its check: it sent more than the expected {size:,} "
            "bytes; the partial file was discarded"
        )
    if size is not None and have < size:
        raise CorpusError(
            f"the download of {url} broke off after {have:,} of {size:,} bytes; "
            "run the same command again to resume"
        )


def extract_member(
    archive: Path, member: str, dest: Path, *, size: int | None, sha256: str | None
) -> Path:
    """Unzip one member of ``archive`` to ``dest`` (via a temporary file) and verify it."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            claimed = zipped.getinfo(member).file_size  # from the header, before unpacking
        if size is not None and claimed != size:
            archive.unlink(missing_ok=True)
            raise Oversized(
                f"{member} in {archive} claims {claimed:,} bytes, not the expected {size:,}; "
                "the archive was removed"
            )
        with (
            zipfile.ZipFile(archive) as zipped,
            zipped.open(member) as src,
            atomic_file(dest) as out,
        ):
            shutil.copyfileobj(src, out, _CHUNK)
            out.flush()
            problem = verify(Path(out.name), size=size, sha256=sha256)
            if problem is not None:
                raise CorpusError(
                    f"{member} unpacked from {archive} failed its check: {problem}; remove "
                    f"{archive} and get the corpus again"
                )
    except OSError as exc:  # a full disk or a read-only cache while unpacking
        raise CorpusError(
            f"cannot unpack {member} from {archive} into {dest.parent}: {exc.strerror or exc}"
        ) from None
    except (zipfile.BadZipFile, KeyError) as exc:
        archive.unlink(missing_ok=True)
        raise CorpusError(
            f"{archive} is not a usable zip archive ({exc}); it was removed"
        ) from None
    return dest
