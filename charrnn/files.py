"""Writing a file so that readers see the old version or the new one, never a mix.

Every file charrnn writes — checkpoints, the corpus cache, ``config.toml``, metrics,
comparison reports, plots, downloads unpacked from a zip — goes through
:func:`atomic_file`: the bytes go to a temporary file in the same folder, are
flushed to disk, and only then renamed over the target, so a crash, a kill or a full
disk at any instant leaves the previous file (or none) in place, never a torn one.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from charrnn.errors import ConfigError

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


# ---------------------------------------------------------------------------------
# Files a person names on the command line (``export -o``, ``sample --out``,
# ``inspect --out``, ``hello --html``, ``corpus make -o``): one rule for all of them.


def _named(path: Path) -> tuple[Path, os.stat_result | None]:
    """A path the user named to write: where it leads (a symbolic link followed) and
    what is there now (None: nothing yet, in a folder that exists). A link loop, a
    missing folder or an unreadable entry is one :class:`ConfigError` line."""
    try:
        resolved = path.resolve() if path.is_symlink() else path
    except (OSError, RuntimeError):  # a symbolic link loop
        raise ConfigError(f"cannot write {path}: it is a symbolic link loop") from None
    try:
        return resolved, os.stat(resolved)
    except FileNotFoundError:
        if not resolved.parent.is_dir():
            folder = resolved.parent
            raise ConfigError(f"cannot write {path}: folder {folder} does not exist") from None
        return resolved, None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def output_target(path: Path, *, overwrite: bool) -> tuple[Path, bool]:
    """Where a file the user named is written, and whether it is written straight through.

    The rule (docs/guarantees.md states it):

    - a symbolic link is followed: the file it points to is written and the link stays;
    - a regular file that exists is replaced (atomically) only with ``overwrite``;
    - a character device or a pipe (``/dev/null``, ``/dev/stdout``, a process
      substitution) is written straight through, never replaced by a regular file;
    - anything else that exists (a folder, a socket, a block device) is refused.

    Raises :class:`ConfigError` with one line for a refusal.
    """
    path = Path(path)
    if path.is_absolute() and path.parts[1] in ("dev", "proc") and path.exists():
        # /dev/stdout, /dev/fd/3, /proc/self/fd/1: the stream a shell handed over, even
        # when it leads to a regular file the shell opened (``> out.txt``).
        return path, True
    resolved, st = _named(path)
    if st is None:
        return resolved, False
    if stat.S_ISREG(st.st_mode):
        if not overwrite:
            raise ConfigError(f"{path} exists; pass --overwrite to replace it")
        return resolved, False
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return resolved, True
    kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
    raise ConfigError(f"cannot write {path}: it is {kind}")


@contextmanager
def output_file(path: Path, *, overwrite: bool) -> Iterator[BinaryIO]:
    """Open a file the user named for binary writing, by :func:`output_target`'s rule.

    A regular file is written atomically (the old one stays until the new one is
    whole); a device or pipe is written through. An ``OSError`` while writing (a full
    disk, ``/dev/full``) becomes one :class:`ConfigError` line.
    """
    target, through = output_target(path, overwrite=overwrite)
    try:
        if through:
            with target.open("wb") as handle:
                yield handle
        else:
            with atomic_file(target) as handle:
                yield handle
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_output(path: Path, data: bytes | str, *, overwrite: bool) -> Path:
    """Write ``data`` (text as UTF-8) to a file the user named; return where it went."""
    target, _ = output_target(path, overwrite=overwrite)
    with output_file(path, overwrite=overwrite) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return target


# ---------------------------------------------------------------------------------
# Folders a person names on the command line (``export --format hub -o DIR``).


def output_folder(path: Path, *, overwrite: bool, ours: tuple[str, ...]) -> Path:
    """Where a folder the user named is written, by the rule of :func:`output_target`
    for folders: a symbolic link is followed; a folder that exists is replaced only
    with ``overwrite``, and only when it holds nothing but the files named in ``ours``
    (replacing it must not delete anything charrnn did not write); anything else that
    exists is refused. Raises :class:`ConfigError` with one line for a refusal.
    """
    path = Path(path)
    resolved, st = _named(path)
    if st is None:
        return resolved
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"cannot write {path}: it exists and is not a folder")
    if not overwrite:
        raise ConfigError(f"{path} exists; pass --overwrite to replace it")
    try:
        foreign = sorted(p.name for p in resolved.iterdir() if p.name not in ours)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    if foreign:
        shown = ", ".join(foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise ConfigError(
            f"{path} holds files charrnn did not write ({shown}); replacing it would delete "
            "them: choose a new or empty folder"
        )
    return resolved


def write_folder(path: Path, files: dict[str, bytes], *, overwrite: bool) -> Path:
    """Write ``files`` (name -> bytes) as the folder ``path`` by :func:`output_folder`'s
    rule; return where it went.

    The files go into a hidden temporary folder beside the target, each flushed to
    disk, and the folder is renamed into place: a failure at any point leaves the old
    folder (or none), never a half-written one. Replacing an old folder takes two
    renames (old aside, new in) and then removes the old one.
    """
    target = output_folder(path, overwrite=overwrite, ours=tuple(files))
    temp = temporary_name(target)
    aside = temp.with_name(temp.name.removesuffix(TEMP_SUFFIX) + ".old" + TEMP_SUFFIX)
    try:
        temp.mkdir()
        for name, data in files.items():
            with _create(temp / name) as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        _fsync_dir(temp)
        if target.exists():
            os.rename(target, aside)
        os.rename(temp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        if aside.exists() and not target.exists():
            os.rename(aside, target)  # put the old folder back
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    shutil.rmtree(aside, ignore_errors=True)  # only once the new folder is in place
    return target
