"""A folder's secrets stay out of the model (issue #34): git's own rules in a
checkout (asked of git, or read through pathspec without it), hidden files left out
unless asked for, and every entry left out counted by its reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from conftest import make_text
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.data import folders
from charrnn.data.sources import gather, read_manifest
from charrnn.errors import CorpusError

runner = CliRunner()
SECRET = "SECRET=hunter2-do-not-learn"
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def own_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user's or system's git settings: a global excludes file of our own."""
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "ignore").write_text("*.key\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return home


@pytest.fixture(params=[pytest.param("git", marks=needs_git), "no git"])
def git_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with git asked, and with git absent (rules read by pathspec)."""
    if request.param == "no git":
        monkeypatch.setattr(folders.shutil, "which", lambda name: None)
    return str(request.param)


def _checkout(root: Path) -> Path:
    """A checkout with nested rules, an info/exclude rule, a .env and a global rule."""
    (root / "docs" / "drafts").mkdir(parents=True)
    (root / "private").mkdir()
    (root / "a.txt").write_text(make_text(800, seed=1))
    (root / "run.log").write_text("log line\n")  # root .gitignore: *.log
    (root / ".env").write_text(SECRET + "\n")  # hidden, untracked, not ignored
    (root / "id.key").write_text(SECRET + "\n")  # the global excludes file: *.key
    (root / "docs" / "b.txt").write_text(make_text(800, seed=2))
    (root / "docs" / "notes.txt").write_text(SECRET + "\n")  # docs/.gitignore
    (root / "docs" / "drafts" / "c.txt").write_text(make_text(800, seed=3))
    (root / "docs" / "drafts" / "keep.log").write_text(make_text(300, seed=4))  # re-included
    (root / "private" / "p.txt").write_text(SECRET + "\n")  # .git/info/exclude: private/
    (root / ".gitignore").write_text("*.log\n")
    (root / "docs" / ".gitignore").write_text("notes.txt\n")
    (root / "docs" / "drafts" / ".gitignore").write_text("!keep.log\n")
    if GIT is not None:
        subprocess.run([GIT, "init", "-q", str(root)], check=True)
    else:
        (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("private/\n")
    return root


def _names(made_files: tuple, root: Path) -> list[str]:
    return [Path(s.path).relative_to(root.absolute()).as_posix() for s in made_files]


def test_a_checkout_gives_what_git_would_and_no_secret(tmp_path: Path, git_mode: str) -> None:
    root = _checkout(tmp_path / "project")
    made = gather([str(root)], cache_dir=tmp_path / "cache")
    assert _names(made.files, root) == [
        "a.txt",
        "docs/b.txt",
        "docs/drafts/c.txt",
        "docs/drafts/keep.log",
    ], git_mode
    assert SECRET not in made.path.read_text()
    # run.log, id.key, docs/notes.txt, private/ (a folder counts once); the three
    # .gitignore files and .env are hidden.
    assert made.skipped == {"hidden": 4, "ignored by git rules": 4}
    manifest = read_manifest(made.path)
    assert manifest is not None and manifest["skipped"] == made.skipped


def test_a_subfolder_of_a_checkout_keeps_the_checkouts_rules(tmp_path: Path, git_mode: str) -> None:
    root = _checkout(tmp_path / "project")
    (root / "docs" / "old.log").write_text(SECRET + "\n")  # the root's *.log
    (root / "docs" / ".env").write_text(SECRET + "\n")
    made = gather([str(root / "docs")], cache_dir=tmp_path / "cache")
    assert _names(made.files, root) == ["docs/b.txt", "docs/drafts/c.txt", "docs/drafts/keep.log"]
    assert SECRET not in made.path.read_text()
    assert made.skipped == {"hidden": 3, "ignored by git rules": 2}


def test_a_folder_that_git_ignores_gives_nothing(tmp_path: Path, git_mode: str) -> None:
    root = _checkout(tmp_path / "project")
    with pytest.raises(CorpusError, match=r"no files to read.*ignored by git rules"):
        gather([str(root / "private")], cache_dir=tmp_path / "cache")


@needs_git
def test_a_tracked_file_is_read_though_a_rule_matches_it(tmp_path: Path) -> None:
    """git's own rule: ignore rules are for untracked files."""
    root = _checkout(tmp_path / "project")
    assert GIT is not None
    subprocess.run([GIT, "-C", str(root), "add", "-f", "run.log"], check=True)
    made = gather([str(root)], cache_dir=tmp_path / "cache")
    assert "run.log" in _names(made.files, root)


def test_hidden_files_are_left_out_outside_a_checkout_unless_asked(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / ".config").mkdir(parents=True)
    (root / "a.txt").write_text(make_text(500))
    (root / ".env").write_text(SECRET + "\n")
    (root / ".config" / "c.txt").write_text(SECRET + "\n")
    made = gather([str(root)], cache_dir=tmp_path / "cache")
    assert _names(made.files, root) == ["a.txt"] and made.skipped == {"hidden": 2}
    assert SECRET not in made.path.read_text()
    shown = gather([str(root)], hidden=True, cache_dir=tmp_path / "cache")
    assert _names(shown.files, root) == [".config/c.txt", ".env", "a.txt"]
    assert shown.path != made.path  # another cache entry: the option is in its key


def test_the_hidden_option_reaches_the_corpus_from_the_command_line(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "a.txt").write_text("abc\n")
    (root / ".env").write_text("xyz\n")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    lenient = runner.invoke(app, ["vocab", str(root), *cache])
    assert lenient.exit_code == 0, lenient.output
    assert "1 file (skipped 1 hidden; --include-hidden reads them)" in lenient.stderr
    assert "4 symbols" in lenient.stdout  # a b c and the line break
    shown = runner.invoke(app, ["vocab", str(root), "--include-hidden", *cache])
    assert shown.exit_code == 0, shown.output
    assert "7 symbols" in shown.stdout and "2 files" in shown.stderr


def test_strict_is_part_of_the_joined_corpus_key(tmp_path: Path) -> None:
    root = tmp_path / "in2"
    root.mkdir()
    (root / "a.txt").write_text(make_text(500))
    (root / "b.bin").write_bytes(b"\0\1\2")
    cache = ["--cache-dir", str(tmp_path / "cache")]
    strict = runner.invoke(app, ["vocab", str(root), "--strict", *cache])
    assert strict.exit_code == 1 and "binary" in strict.stderr
    lenient = runner.invoke(app, ["vocab", str(root), *cache])
    assert lenient.exit_code == 0, lenient.output
    again = runner.invoke(app, ["vocab", str(root), "--strict", *cache])
    assert again.exit_code == 1 and "binary" in again.stderr, again.output


def test_fifos_and_links_to_devices_are_counted_and_never_opened(tmp_path: Path) -> None:
    root = tmp_path / "odd"
    root.mkdir()
    (root / "a.txt").write_text(make_text(500))
    os.mkfifo(root / "pipe")  # opening it would block until a writer came
    (root / "null").symlink_to("/dev/null")
    (root / "gone").symlink_to(root / "no-such-file")
    made: list = []
    worker = threading.Thread(
        target=lambda: made.append(gather([str(root)], cache_dir=tmp_path / "cache")),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=30)
    assert made, "gather blocked on the FIFO"
    assert made[0].skipped == {"not a regular file": 3}
    assert "(skipped 3 not a regular file)" in made[0].describe()
    with pytest.raises(CorpusError, match="3 entries are not a regular file"):
        gather([str(root)], strict=True, cache_dir=tmp_path / "cache")


def test_a_checkout_follows_no_link_out_of_it(tmp_path: Path, git_mode: str) -> None:
    """git keeps a link, not what it points to: ~/.ssh behind a link stays out."""
    keys = tmp_path / "ssh"
    keys.mkdir()
    (keys / "id_rsa").write_text(SECRET + "\n")
    root = _checkout(tmp_path / "project")
    (root / "keys").symlink_to(keys, target_is_directory=True)
    (root / "key.txt").symlink_to(keys / "id_rsa")
    made = gather([str(root)], cache_dir=tmp_path / "cache")
    assert SECRET not in made.path.read_text()
    assert made.skipped["not a regular file"] == 2


def test_git_that_cannot_answer_gives_the_same_rules_through_pathspec(tmp_path: Path) -> None:
    """git refusing the folder (another owner's, a broken repository): the same files."""
    root = _checkout(tmp_path / "project")
    asked = folders.list_folder(root, git=shutil.which("false") or "/bin/false")
    assert [p.relative_to(root).as_posix() for p in asked.files] == [
        "a.txt",
        "docs/b.txt",
        "docs/drafts/c.txt",
        "docs/drafts/keep.log",
    ]
    assert asked.left_out == {"hidden": 4, "ignored by git rules": 4}


def test_a_repository_inside_the_folder_has_its_own_rules(tmp_path: Path, git_mode: str) -> None:
    outer = tmp_path / "outer"
    inner = outer / "vendor"
    inner.mkdir(parents=True)
    (outer / "a.txt").write_text(make_text(300))
    (inner / "b.txt").write_text(make_text(300, seed=2))
    (inner / "token.txt").write_text(SECRET + "\n")
    (inner / ".gitignore").write_text("token.txt\n")
    if GIT is not None:
        subprocess.run([GIT, "init", "-q", str(inner)], check=True)
    else:
        (inner / ".git").mkdir()
    made = gather([str(outer)], cache_dir=tmp_path / "cache")  # outer: no checkout
    assert _names(made.files, outer) == ["a.txt", "vendor/b.txt"]
    assert SECRET not in made.path.read_text()


@needs_git
def test_a_worktree_keeps_its_repositorys_exclude_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worktree's .git is a file pointing at the shared repository, whose
    info/exclude applies; the pointer itself is neither read nor counted."""
    assert GIT is not None
    repo = _checkout(tmp_path / "project")
    git = [GIT, "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "a.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (repo / ".git" / "info" / "exclude").write_text("secret*\n")
    tree = tmp_path / "tree"
    subprocess.run([*git, "worktree", "add", "-q", str(tree)], check=True, capture_output=True)
    (tree / "secret.txt").write_text(SECRET + "\n")
    (tree / "b.txt").write_text("b\n")
    asked = folders.list_folder(tree)
    monkeypatch.setattr(folders.shutil, "which", lambda name: None)
    read = folders.list_folder(tree)
    for listing in (asked, read):
        assert [p.name for p in listing.files] == ["a.txt", "b.txt"]
        assert listing.left_out == {"ignored by git rules": 1}


def test_a_relative_folder_is_recorded_by_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run resumed from another working folder still finds its files."""
    (tmp_path / "poems").mkdir()
    (tmp_path / "poems" / "a.txt").write_text(make_text(300))
    monkeypatch.chdir(tmp_path)
    made = gather(["poems"], cache_dir=tmp_path / "cache")
    manifest = read_manifest(made.path)
    assert manifest is not None
    assert [Path(f["path"]).is_absolute() for f in manifest["files"]] == [True]
    assert manifest["inputs"] == [str(tmp_path / "poems")]
