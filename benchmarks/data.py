"""Data-pipeline benchmarks: vocabulary + encoding speed, and memory against corpus size."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.textgen import write_corpus
from charrnn.data.text import load_corpus


def encode_speed(megabytes: float, repeats: int = 3) -> dict[str, Any]:
    """MB/s of a cold ``load_corpus`` (both passes: vocabulary and ids), median of repeats."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_corpus(Path(tmp) / "corpus.txt", megabytes)
        size_mb = path.stat().st_size / 1e6
        times = []
        for i in range(repeats + 1):  # the first run warms the page cache
            start = time.perf_counter()
            corpus = load_corpus(path, cache_dir=Path(tmp) / f"cache{i}")
            elapsed = time.perf_counter() - start
            assert len(corpus) == path.stat().st_size  # ASCII: one id per byte
            if i:
                times.append(elapsed)
        times.sort()
        median = times[len(times) // 2]
        cached_start = time.perf_counter()
        load_corpus(path, cache_dir=Path(tmp) / "cache1")
        cached = time.perf_counter() - cached_start
    return {
        "corpus_mb": round(size_mb, 1),
        "encode_s": round(median, 3),
        "encode_mb_per_s": round(size_mb / median, 1),
        "cached_load_s": round(cached, 4),
    }


def peak_rss(sizes_mb: list[float]) -> list[dict[str, Any]]:
    """Peak RSS of a fresh process that encodes a corpus and trains 300 steps on it."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sizes_mb:
            path = write_corpus(Path(tmp) / f"corpus-{mb:g}mb.txt", mb)
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.rss_child", str(path), str(Path(tmp) / "c")],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"corpus_mb": mb, "peak_rss_mb": round(result["peak_rss_mb"], 1)})
            path.unlink()
    return rows
