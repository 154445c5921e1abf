"""Run in a fresh process: encode, train 300 steps on a corpus, print peak RSS in MB.

``python -m benchmarks.rss_child FILE CACHE_DIR`` — a separate process so each corpus
size gets its own peak.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
from pathlib import Path

from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.training.launch import train


def main() -> None:
    corpus, cache = Path(sys.argv[1]), Path(sys.argv[2])
    config = RunConfig(
        DataConfig(path=str(corpus), val_frac=0.001),
        ModelConfig(cell="lstm", num_layers=2, hidden_size=128, embed_size=32),
        TrainConfig(
            batch_size=32, seq_len=64, steps=300, eval_every=10**6, sample_length=0, threads=2
        ),
    )
    with tempfile.TemporaryDirectory() as out:
        train(config, Path(out) / "run", cache_dir=cache)
    print(json.dumps({"peak_rss_mb": peak_kib() / 1024}))


def peak_kib() -> int:
    """This process's peak resident set, in KiB.

    VmHWM belongs to the process image, so it starts afresh at exec. getrusage's
    ru_maxrss does not: Linux carries the parent's peak across fork and exec, so a
    child of a large benchmark process would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


if __name__ == "__main__":
    main()
