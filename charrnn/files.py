"""Writing a file so that readers see the old version or the new one, never a mix."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def atomic_write_text(target: Path, text: str) -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``target`` atomically.

    The text goes to a temporary file in the same folder, is flushed to disk, then
    renamed over ``target``; on any failure the temporary file is removed and the
    ``OSError`` propagates for the caller to turn into its own error.
    """
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temp.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
