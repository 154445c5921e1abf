from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from charrnn.data.streams import StreamBatches, ValidationWindows
from charrnn.errors import CorpusError

B, T = 3, 5


def test_targets_are_inputs_shifted_by_one() -> None:
    ids = np.arange(200, dtype=np.uint16)
    batches = StreamBatches(ids, B, T)
    w = batches.window(0)
    assert w.x.shape == (B, T) and w.y.shape == (B, T)
    assert w.x.dtype == torch.int64
    assert torch.equal(w.y[:, :-1], w.x[:, 1:])
    assert torch.equal(w.y[:, -1], w.x[:, -1] + 1)  # ids are consecutive numbers here


def test_consecutive_windows_of_a_row_are_contiguous_in_the_text() -> None:
    ids = np.arange(200)
    batches = StreamBatches(ids, B, T)
    rows = batches.row_len
    for k in range(batches.windows_per_epoch - 1):
        now, nxt = batches.window(k), batches.window(k + 1)
        # window k+1 starts exactly where window k's inputs ended
        assert torch.equal(nxt.x[:, 0], now.x[:, -1] + 1)
    first = batches.window(0)
    assert first.x[:, 0].tolist() == [0, rows, 2 * rows]  # each row is its own stream


def test_epoch_wraps_with_a_reset_flag() -> None:
    batches = StreamBatches(np.arange(100), B, T)
    n = batches.windows_per_epoch
    assert batches.window(0).reset
    assert not batches.window(1).reset
    wrapped = batches.window(n)
    assert wrapped.reset and wrapped.epoch == 1
    assert torch.equal(wrapped.x, batches.window(0).x)
    last = batches.window(n - 1)
    assert torch.equal(last.y, last.x + 1), "targets are the inputs shifted by one"


def test_too_small_for_one_window_says_how_long() -> None:
    with pytest.raises(CorpusError, match=r"needs at least 18"):
        StreamBatches(np.arange(17), B, T)
    StreamBatches(np.arange(18), B, T)  # exactly enough


def test_validation_covers_every_character_once() -> None:
    ids = np.arange(53)
    val = ValidationWindows(ids, max_rows=4, seq_len=T)
    seen: list[int] = []
    for x, y in val:
        assert x.shape == y.shape and x.shape[1] <= T
        seen.extend(y.flatten().tolist())
    assert len(seen) == val.num_targets
    assert len(set(seen)) == len(seen)
    assert val.num_targets == val.rows * (val.row_len - 1)


def test_short_validation_uses_one_row() -> None:
    val = ValidationWindows(np.arange(4), max_rows=8, seq_len=10)
    assert val.rows == 1
    ((x, y),) = list(val)
    assert x.tolist() == [[0, 1, 2]] and y.tolist() == [[1, 2, 3]]


def test_reading_a_memory_mapped_corpus_releases_its_pages(tmp_path: Path) -> None:
    path = tmp_path / "ids.npy"
    np.save(path, np.arange(4_000_000, dtype=np.uint8) % 200)
    ids = np.load(path, mmap_mode="r")

    def resident_file_kb() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssFile:"):
                return int(line.split()[1])
        pytest.skip("no /proc/self/status")
        return 0

    before = resident_file_kb()
    np.asarray(ids[:]).sum()  # touch every page: about 4 MB becomes resident
    assert resident_file_kb() - before > 3000
    from charrnn.data.streams import release_pages

    release_pages(ids[100:])  # a view, as the train/validation split makes
    assert resident_file_kb() - before < 1000


def test_random_windows_come_from_anywhere_and_are_the_same_for_the_same_step() -> None:
    ids = np.arange(10_000)
    batches = StreamBatches(ids, 8, 20, random_seed=7)
    first, again = batches.window(3), StreamBatches(ids, 8, 20, random_seed=7).window(3)
    assert torch.equal(first.x, again.x)  # a resumed run draws the same windows
    assert first.reset  # no state carries over between random windows
    assert torch.equal(first.y[:, :-1], first.x[:, 1:])  # targets: inputs shifted by one
    assert torch.equal(first.x[:, 1:] - first.x[:, :-1], torch.ones(8, 19, dtype=torch.long))
    starts = torch.cat([batches.window(step).x[:, 0] for step in range(50)])
    assert starts.max() > 9_000 and starts.min() < 1_000  # the whole text, not 8 streams
    assert not torch.equal(batches.window(4).x, first.x)
