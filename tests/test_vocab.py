from __future__ import annotations

import numpy as np
import pytest
from conftest import Recorder
from hypothesis import given
from hypothesis import strategies as st

from charrnn.data.vocab import Vocab, id_dtype
from charrnn.errors import VocabError


def test_symbols_are_the_sorted_code_points_of_the_text() -> None:
    vocab = Vocab.from_text("hello")
    assert vocab.symbols == (ord("e"), ord("h"), ord("l"), ord("o"))
    assert list(vocab.encode("hello")) == [1, 0, 2, 2, 3]


def test_same_text_same_ids_regardless_of_order_seen() -> None:
    assert Vocab.from_text("abcabc") == Vocab.from_text("cbacba")


@given(st.text(min_size=1))
def test_round_trip_any_text(text: str) -> None:
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert vocab.decode(ids) == text
    assert vocab.decode_bytes(ids) == text.encode("utf-8", "surrogatepass")


def test_non_bmp_and_combining_characters_round_trip() -> None:
    text = "e\u0301 🙂 שלום \u0000 end"
    vocab = Vocab.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text


def test_unknown_characters_are_named_in_the_error() -> None:
    vocab = Vocab.from_text("abc")
    with pytest.raises(VocabError) as info:
        vocab.encode("abxyz€", what="priming text")
    message = str(info.value)
    assert "priming text has 4 characters not in the vocabulary" in message
    assert "'x' (U+0078)" in message and "'€' (U+20AC)" in message


def test_unknown_characters_can_be_dropped_with_a_warning() -> None:
    vocab = Vocab.from_text("abc")
    recorder = Recorder()
    warnings = recorder.warnings
    ids = vocab.encode("axbyc", on_unknown="drop", reporter=recorder)
    assert vocab.decode(ids) == "abc"
    assert len(warnings) == 1 and "'x'" in warnings[0] and "dropped" in warnings[0]


def test_error_lists_at_most_five_unknown_characters() -> None:
    vocab = Vocab.from_text("a")
    with pytest.raises(VocabError, match="and 3 more"):
        vocab.encode("bcdefghi")


def test_byte_vocabulary_has_256_symbols_and_round_trips_utf8() -> None:
    vocab = Vocab.bytes_vocab()
    assert len(vocab) == 256
    ids = vocab.encode("héllo")
    assert len(ids) == 6  # é is two bytes
    assert vocab.decode(ids) == "héllo"


def test_dict_round_trip_and_validation() -> None:
    vocab = Vocab.from_text("hello world")
    assert Vocab.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(VocabError):
        Vocab((3, 1, 2))
    with pytest.raises(VocabError):
        Vocab.from_dict({"symbols": "nope"})


def test_id_dtype_is_the_smallest_that_fits() -> None:
    assert id_dtype(256) == np.uint8
    assert id_dtype(257) == np.uint16
    assert id_dtype(70000) == np.uint32
