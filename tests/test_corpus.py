from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import Recorder

from charrnn.data import text as corpus_module
from charrnn.data.catalog import DEFAULT_CORPUS, build_stdlib_text, resolve_corpus, stdlib_files
from charrnn.data.text import encode_validation_file, load_corpus, read_text, split_ids
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError, VocabError


def test_encodes_the_file_and_counts_every_symbol(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("abracadabra", encoding="utf-8")
    corpus = load_corpus(path, cache_dir=tmp_path / "c")
    assert corpus.vocab == Vocab.from_text("abracadabra")
    assert corpus.vocab.decode(np.asarray(corpus.ids)) == "abracadabra"
    assert dict(zip(corpus.vocab.chars, corpus.counts.tolist(), strict=True)) == {
        "a": 5,
        "b": 2,
        "c": 1,
        "d": 1,
        "r": 2,
    }
    assert corpus.ids.dtype == np.uint8
    assert isinstance(corpus.ids, np.memmap)


def test_chunk_boundaries_inside_multibyte_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 7)  # splits most 2-4 byte characters
    text = "héllo wörld — 🙂 ok\n" * 20
    path = tmp_path / "u.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(path, cache_dir=tmp_path / "c")
    assert corpus.vocab.decode(np.asarray(corpus.ids)) == text


def test_large_vocabulary_uses_uint16(tmp_path: Path) -> None:
    text = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 300))
    path = tmp_path / "cjk.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(path, cache_dir=tmp_path / "c")
    assert corpus.ids.dtype == np.uint16
    assert corpus.vocab.decode(np.asarray(corpus.ids)) == text


def test_invalid_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good text\xff more")
    with pytest.raises(CorpusError, match=r"invalid utf-8 at byte offset 9"):
        load_corpus(path, cache_dir=tmp_path / "c")


def test_invalid_utf8_offset_past_the_first_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 4)
    path = tmp_path / "bad.txt"
    path.write_bytes("ééééé".encode() + b"\xc3")  # truncated 2-byte sequence at the end
    with pytest.raises(CorpusError, match=r"byte offset 10"):
        load_corpus(path, cache_dir=tmp_path / "c")


def test_other_encodings_and_byte_level(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("café".encode("latin-1"))
    with pytest.raises(CorpusError):
        load_corpus(path, cache_dir=tmp_path / "c")
    latin = load_corpus(path, encoding="latin-1", cache_dir=tmp_path / "c")
    assert latin.vocab.decode(np.asarray(latin.ids)) == "café"
    raw = load_corpus(path, byte_level=True, cache_dir=tmp_path / "c")
    assert len(raw.vocab) == 256
    assert bytes(np.asarray(raw.ids)) == "café".encode("latin-1")
    with pytest.raises(CorpusError, match="unknown encoding"):
        load_corpus(path, encoding="no-such-codec", cache_dir=tmp_path / "c")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "is empty"),
    ],
)
def test_unusable_files_are_clear_errors(tmp_path: Path, setup: object, message: str) -> None:
    path = tmp_path / "x.txt"
    setup(path)  # type: ignore[operator]
    with pytest.raises(CorpusError, match=message):
        load_corpus(path, cache_dir=tmp_path / "c")


def test_unreadable_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("text")

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(CorpusError, match="cannot read: Permission denied"):
        load_corpus(path, cache_dir=tmp_path / "c")


def test_cache_is_reused_and_refreshed_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.txt"
    path.write_text("first version", encoding="utf-8")
    encodes: list[Path] = []
    scan = corpus_module._scan

    def counted_scan(source: Path, *args: object) -> object:
        encodes.append(source)
        return scan(source, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(corpus_module, "_scan", counted_scan)
    first = load_corpus(path, cache_dir=tmp_path / "c")
    again = load_corpus(path, cache_dir=tmp_path / "c")
    assert len(encodes) == 1, "an unchanged file must not be encoded again"
    assert first.sha256 == again.sha256

    path.write_text("second, longer version!", encoding="utf-8")
    changed = load_corpus(path, cache_dir=tmp_path / "c")
    assert len(encodes) == 2
    assert changed.vocab.decode(np.asarray(changed.ids)) == "second, longer version!"

    # Touching the file (new mtime, same bytes) rescans but keeps the same ids file.
    ids_files = sorted(p.name for p in (tmp_path / "c").rglob("ids-*.npy"))
    os.utime(path, ns=(1, 1))
    load_corpus(path, cache_dir=tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").rglob("ids-*.npy")) == ids_files


def test_interrupted_encode_leaves_no_broken_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "t.txt"
    path.write_text("some text to encode", encoding="utf-8")
    real = Vocab.encode_symbols

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Vocab, "encode_symbols", crash)
    with pytest.raises(KeyboardInterrupt):
        load_corpus(path, cache_dir=tmp_path / "c")
    leftovers = [p.name for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert leftovers == [], f"partial cache files left: {leftovers}"
    monkeypatch.setattr(Vocab, "encode_symbols", real)
    corpus = load_corpus(path, cache_dir=tmp_path / "c")
    assert corpus.vocab.decode(np.asarray(corpus.ids)) == "some text to encode"


def test_corrupt_cache_metadata_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("abc abc", encoding="utf-8")
    load_corpus(path, cache_dir=tmp_path / "c")
    (meta,) = (tmp_path / "c").rglob("meta.json")
    meta.write_text("{not json")
    corpus = load_corpus(path, cache_dir=tmp_path / "c")
    assert corpus.vocab.decode(np.asarray(corpus.ids)) == "abc abc"


def test_split_takes_the_tail_for_validation() -> None:
    ids = np.arange(100)
    train, val = split_ids(ids, 0.1)
    assert list(val) == list(range(90, 100))
    assert len(train) == 90


def test_split_too_small_says_how_long_the_text_must_be() -> None:
    with pytest.raises(CorpusError, match="needs at least 40"):
        split_ids(np.arange(10), 0.05)


def test_validation_file_uses_the_training_vocabulary(tmp_path: Path) -> None:
    vocab = Vocab.from_text("abc ")
    good = tmp_path / "v.txt"
    good.write_text("cab abc")
    assert vocab.decode(encode_validation_file(good, vocab)) == "cab abc"
    bad = tmp_path / "w.txt"
    bad.write_text("abz abz")
    with pytest.raises(VocabError, match=r"validation file .* 'z'"):
        encode_validation_file(bad, vocab)
    recorder = Recorder()
    ids = encode_validation_file(bad, vocab, skip_unknown=True, reporter=recorder)
    assert vocab.decode(ids) == "ab ab" and recorder.warnings


def test_read_text(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("line one\nline two ✓\n", encoding="utf-8")
    assert read_text(path) == "line one\nline two ✓\n"


def test_default_corpus_is_the_stdlib_without_tests(tmp_path: Path) -> None:
    files = [rel for rel, _ in stdlib_files()]
    assert files == sorted(files) or files  # walk order is fixed
    assert not any("/test/" in f"/{rel}" or "/tests/" in f"/{rel}" for rel in files)
    assert not any(rel.split("/")[-1].startswith("test_") for rel in files)
    text = build_stdlib_text(0.2)
    assert 100_000 < len(text.encode()) <= 200_000
    assert text == build_stdlib_text(0.2), "must be deterministic"
    assert "# file: " in text and "def " in text
    path, name = resolve_corpus(None, max_mb=0.2, cache_dir=tmp_path)
    assert name == DEFAULT_CORPUS
    assert path.read_text(encoding="utf-8") == text


def test_ascii_fast_path_keeps_a_pending_invalid_sequence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 4)
    path = tmp_path / "bad.txt"
    path.write_bytes(b"abc\xc3defgh")  # a lead byte, then an all-ASCII chunk
    with pytest.raises(CorpusError, match="byte offset 3"):
        load_corpus(path, cache_dir=tmp_path / "c")


def test_ascii_and_non_ascii_chunks_mix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 8)
    text = "plain ascii here " * 3 + "ünïcödé " + "more ascii " * 3 + "日本語" + " end"
    path = tmp_path / "mixed.txt"
    path.write_text(text, encoding="utf-8")
    corpus = load_corpus(path, cache_dir=tmp_path / "c")
    assert corpus.vocab == Vocab.from_text(text)
    assert corpus.vocab.decode(np.asarray(corpus.ids)) == text
    assert int(corpus.counts.sum()) == len(text)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000])
def test_count_symbols_matches_bincount(n: int) -> None:
    from charrnn.data.text import count_symbols

    data = np.random.default_rng(n).integers(0, 256, size=n, dtype=np.uint8)
    counts = count_symbols(data)
    assert len(counts) == 256
    assert counts.tolist() == np.bincount(data, minlength=256).tolist()
    wide = data.astype(np.uint32) * 300
    assert count_symbols(wide).tolist() == np.bincount(wide).tolist()
