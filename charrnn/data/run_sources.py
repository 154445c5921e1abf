"""What a run keeps of the joined corpus it trained on (``RUN/sources.json``): the
files with their hashes, what the gathering left out and how it gathered, so that
``info`` can count them and ``--resume`` can refuse a file that changed, went
missing or was added since the run started.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from charrnn.data.sources import ordered_counts, read_manifest, unusable, walk
from charrnn.errors import CorpusError
from charrnn.files import atomic_write_text

RUN_SOURCES = "sources.json"  # a run's copy of its joined corpus's manifest


def record_sources(corpus: Path, run: Path) -> None:
    """Keep a joined corpus's list of files and hashes, what it left out, and how it
    was gathered (to see added files on resume) in the run directory."""
    manifest = read_manifest(corpus)
    if manifest is not None:
        listed = {
            "files": manifest["files"],
            "skipped": manifest.get("skipped", {}),
            "inputs": manifest.get("inputs"),
            "options": manifest.get("options"),
            "seen": [entry[0] for entry in manifest.get("seen", []) if entry],
        }
        atomic_write_text(run / RUN_SOURCES, json.dumps(listed, indent=1))


def _run_record(run: Path) -> dict[str, Any]:
    try:
        record = json.loads((run / RUN_SOURCES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def run_sources(run: Path) -> list[dict[str, Any]] | None:
    """The files a run's joined corpus was made of, or None (one file)."""
    files = _run_record(run).get("files")
    return files if isinstance(files, list) else None


def run_skipped(run: Path) -> dict[str, int]:
    """What a run's joined corpus left out, by reason (empty for one file)."""
    skipped = _run_record(run).get("skipped")
    try:
        return ordered_counts({str(k): int(v) for k, v in skipped.items()}) if skipped else {}
    except (AttributeError, TypeError, ValueError):
        return {}


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
    added = _added_files(_run_record(run))
    if added:
        shown = ", ".join(added[:3]) + (f" and {len(added) - 3} more" if len(added) > 3 else "")
        raise CorpusError(
            f"{len(added)} text file{'s were' if len(added) > 1 else ' was'} added to the "
            f"run's folders since it started ({shown}); resuming would not train on "
            f"{'them' if len(added) > 1 else 'it'} (start a new run instead, or move "
            f"{'them' if len(added) > 1 else 'it'} out)"
        )


def _added_files(record: dict[str, Any]) -> list[str]:
    """Files the run's inputs now give that a fresh gathering would read (text, not
    skipped) and that were not there when it started; none for a run recorded before
    its inputs were kept."""
    inputs, options, seen = record.get("inputs"), record.get("options"), record.get("seen")
    if not isinstance(inputs, list) or not isinstance(options, dict) or not isinstance(seen, list):
        return []
    try:
        now, _ = walk([str(item) for item in inputs], hidden=bool(options.get("hidden")))
    except CorpusError:
        return []  # an input went missing: its files are named as missing above
    before = {str(path) for path in seen}
    encoding = str(options.get("encoding") or "utf-8")
    added = []
    for file in now:
        if str(file.absolute()) in before:
            continue
        try:
            if unusable(file.read_bytes(), encoding) is None:
                added.append(str(file))
        except OSError:
            added.append(str(file))
    return added
