"""What a folder given as a corpus holds that may be read, and what is left out and why.

A folder is often a project, and a project holds secrets (``.env``, keys, local
settings) that a model must never learn and write back to whoever samples it. So:

- inside a git checkout, git's own rules decide: when git is installed it is asked
  (``git ls-files --cached --others --exclude-standard``: tracked files and untracked
  ones it does not ignore, honouring nested ``.gitignore`` files, ``.git/info/exclude``
  and the global excludes file, from a subfolder of a checkout too); without git the
  same files are read through ``pathspec`` (the global ``git/ignore`` file,
  ``info/exclude``, and every ``.gitignore`` from the checkout's root down);
- hidden files and folders (names starting with ``.``) are left out unless asked for,
  in a checkout and outside one; ``.git`` itself is never read;
- anything that is not a regular file (a FIFO, a socket, a link to a device or to
  nothing; in a checkout, any symbolic link, as git keeps the link and not what it
  points to) is never opened (opening a FIFO blocks) and is counted.

Every entry left out is counted by its reason (:data:`IGNORED`, :data:`HIDDEN`,
:data:`NOT_REGULAR`); a folder left out whole counts once.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IGNORED = "ignored by git rules"
HIDDEN = "hidden"
NOT_REGULAR = "not a regular file"

GIT_TIMEOUT_S = 120.0  # a listing of a huge checkout on a slow disk, with room to spare
# Variables that would point git at another repository than the folder's own.
_GIT_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR")

Ignored = Callable[[Path, bool], bool]  # (absolute path, is a folder) -> left out


@dataclass
class Listing:
    """A folder's readable files (sorted by relative path) and the entries left out."""

    files: list[Path] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)


def list_folder(root: Path, *, hidden: bool = False, git: str | None = None) -> Listing:
    """The files of the folder ``root`` that may be read, in a stable order, and what
    was left out (see the module's notes).

    ``hidden``: read hidden files and folders too. ``git``: the git program to ask
    (default: the one on PATH; none found, the rules are read through ``pathspec``).
    Outside a checkout, links to files and folders are followed, and folders reached
    twice through them (a loop) are walked once.
    """
    program = git if git is not None else shutil.which("git")
    top = root.absolute()
    rules: dict[Path, Ignored | None] = {top: _rules_for(top, program, nested=False)}
    listing = Listing()
    visited: set[Path] = set()
    found: list[Path] = []
    for folder, dirs, names in os.walk(top, followlinks=True):
        here = Path(folder)
        real = here.resolve()
        if real in visited:  # a symbolic link back up the tree
            dirs[:] = []
            continue
        visited.add(real)
        ignored = rules[here]
        kept = []
        for name in sorted(dirs):
            path = here / name
            if name == ".git":
                continue  # git's own store, never text
            why = _linked(path, ignored) or _left_out(path, name, True, ignored, hidden)
            if why is not None:
                listing.left_out[why] += 1
                continue
            kept.append(name)
            nested = (path / ".git").exists()  # a repository of its own: its own rules
            rules[path] = _rules_for(path, program, nested=True) if nested else ignored
        dirs[:] = kept
        for name in names:
            path = here / name
            if name == ".git":
                continue  # a worktree's or submodule's pointer to its repository
            why = NOT_REGULAR if not _is_regular(path) else _linked(path, ignored)
            why = why or _left_out(path, name, False, ignored, hidden)
            if why is not None:
                listing.left_out[why] += 1
            else:
                found.append(path)
    listing.files = sorted(found, key=lambda p: p.relative_to(top).as_posix())
    if top != root:  # keep the spelling the caller gave
        listing.files = [root / p.relative_to(top) for p in listing.files]
    return listing


def _left_out(
    path: Path, name: str, is_dir: bool, ignored: Ignored | None, hidden: bool
) -> str | None:
    if ignored is not None and ignored(path, is_dir):
        return IGNORED
    if name.startswith(".") and not hidden:
        return HIDDEN
    return None


def _linked(path: Path, ignored: Ignored | None) -> str | None:
    """In a checkout a symbolic link is not followed: git keeps the link, not what it
    points to (which may be a secret anywhere on the machine, such as ``~/.ssh``)."""
    return NOT_REGULAR if ignored is not None and path.is_symlink() else None


def _is_regular(path: Path) -> bool:
    """A regular file (through any links), checked without opening it."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:  # a link to nothing, or a loop of links
        return False


def checkout_root(folder: Path) -> Path | None:
    """The top of the git checkout ``folder`` lies in (the nearest folder up from it
    holding ``.git``), or None outside one."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _rules_for(folder: Path, git: str | None, *, nested: bool) -> Ignored | None:
    """The rule deciding what under ``folder`` git would leave out, or None when
    ``folder`` is in no checkout (hidden files are still left out by the caller)."""
    top = folder if nested else checkout_root(folder)
    if top is None:
        return None
    if git is not None:
        asked = _ask_git(folder, git)
        if asked is not None:
            return asked
    return _PathspecRules(top, folder)  # no git, or git refused (e.g. another owner's)


def _ask_git(folder: Path, git: str) -> Ignored | None:
    """Git's own answer for ``folder``: a file is read when git lists it (tracked, or
    untracked and not ignored), a folder is left out when git calls it ignored; None
    when git cannot answer."""
    listed = _git_paths(folder, git, "--cached", "--others", "--exclude-standard")
    dropped = _git_paths(folder, git, "--others", "--ignored", "--exclude-standard", "--directory")
    if listed is None or dropped is None:
        return None
    kept = {folder / name for name in listed}
    dropped_dirs = {folder / name for name in dropped if name.endswith("/")}

    def ignored(path: Path, is_dir: bool) -> bool:
        if is_dir:
            return path in dropped_dirs
        return path not in kept  # what git does not list is left out

    return ignored


def _git_paths(folder: Path, git: str, *flags: str) -> list[str] | None:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
    try:
        done = subprocess.run(
            [git, "ls-files", "-z", *flags],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [os.fsdecode(name) for name in done.stdout.split(b"\0") if name]


class _PathspecRules:
    """Git's ignore rules read without git: the global excludes file, the checkout's
    ``info/exclude``, and each folder's ``.gitignore`` from the checkout's top down,
    the deepest match deciding (as in git). Tracked files that a rule matches are
    left out too: without git, what is tracked is not known."""

    def __init__(self, top: Path, folder: Path) -> None:
        self.top = top
        self.specs: dict[Path, list[tuple[Path, Any]]] = {}
        base: list[tuple[Path, Any]] = []
        for file in (_global_excludes(), _git_dir(top) / "info" / "exclude"):
            spec = _spec(file) if file is not None else None
            if spec is not None:
                base.append((top, spec))
        self.specs[top] = base + self._own(top)
        self.outside = False  # the folder itself lies in an ignored folder
        chain = [folder, *folder.parents]
        for step in reversed(chain[: chain.index(top)] if top in chain else []):
            if self(step, True):
                self.outside = True
            self.specs[step] = self.specs[step.parent] + self._own(step)

    @staticmethod
    def _own(folder: Path) -> list[tuple[Path, Any]]:
        spec = _spec(folder / ".gitignore")
        return [(folder, spec)] if spec is not None else []

    def _for(self, folder: Path) -> list[tuple[Path, Any]]:
        specs = self.specs.get(folder)
        if specs is None:
            specs = self._for(folder.parent) + self._own(folder)
            self.specs[folder] = specs
        return specs

    def __call__(self, path: Path, is_dir: bool) -> bool:
        if self.outside:
            return True
        decided = None
        for base, spec in self._for(path.parent):
            relative = path.relative_to(base).as_posix() + ("/" if is_dir else "")
            include = spec.check_file(relative).include
            if include is not None:
                decided = include
        return bool(decided)


def _spec(file: Path) -> Any:
    """A ``pathspec`` rule set from an ignore file, or None when there is none."""
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _global_excludes() -> Path | None:
    """git's default global excludes file (``core.excludesFile`` needs git to read)."""
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(config) / "git" / "ignore"


def _git_dir(top: Path) -> Path:
    """The checkout's git folder: ``.git``, or where a ``.git`` file (a worktree, a
    submodule) points (its shared folder for a worktree)."""
    dot = top / ".git"
    if not dot.is_file():
        return dot
    try:
        pointer = dot.read_text(encoding="utf-8").strip()
    except OSError:
        return dot
    if not pointer.startswith("gitdir:"):
        return dot
    where = (top / pointer.removeprefix("gitdir:").strip()).resolve()
    try:
        common = (where / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return where
    return (where / common).resolve()
