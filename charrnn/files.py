"""Writing a file so that readers see the old version or the new one, never a mix.

Every file charrnn writes — checkpoints, the corpus cache, ``config.toml``, metrics,
comparison reports, plots, downloads unpacked from a zip — goes through
:func:`atomic_file`: the bytes go to a temporary file in the same folder, are
flushed to disk, and only then renamed over the target, so a crash, a kill or a full
disk at any instant leaves the previous file (or none) in place, never a torn one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def temporary_name(target: Path) -> Path:
    """A hidden, unique sibling of ``target`` (``.NAME.<hex>.tmp``), swept up by
    :meth:`charrnn.rundir.RunDir.clean_temporaries` after a kill."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}")


@contextmanager
def atomic_file(target: Path, *, readable_as: int | None = None) -> Iterator[BinaryIO]:
    """Open a temporary file for binary writing; on a clean exit it replaces ``target``.

    The file gets the permissions the umask gives, narrowed to ``readable_as`` (a
    source file's mode) when given: a copy derived from a file is never more readable
    than that file. On any exception the temporary file is removed, ``target`` is
    untouched and the exception propagates for the caller to turn into its own error.
    """
    target = Path(target)
    temp = temporary_name(target)
    try:
        with _create(temp) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if readable_as is not None:
            os.chmod(temp, os.stat(temp).st_mode & readable_as & 0o666)
        os.replace(temp, target)
        _fsync_dir(target.parent)
    finally:
        temp.unlink(missing_ok=True)


def _create(temp: Path) -> BinaryIO:
    """Open the temporary file (one place, so tests can make its creation fail)."""
    return temp.open("wb")


def atomic_write_bytes(target: Path, data: bytes, *, readable_as: int | None = None) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_file(target, readable_as=readable_as) as handle:
        handle.write(data)


def atomic_write_text(target: Path, text: str, *, readable_as: int | None = None) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"), readable_as=readable_as)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
