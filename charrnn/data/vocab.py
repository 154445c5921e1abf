"""The vocabulary: the sorted set of symbols of the training text, and id <-> text.

A symbol is a Unicode code point (character-level, the default) or a byte value
(byte-level, ``--bytes``: always all 256 bytes, so any file works). Sorting makes the
ids a pure function of the text: the same text always gives the same vocabulary.

Nothing here loops over characters in Python: text goes to code points through
``str.encode("utf-32-le")`` and a lookup table maps code points to ids in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from charrnn.errors import VocabError
from charrnn.events import SILENT, Reporter

OnUnknown = Literal["error", "drop"]

# Largest vocabulary an id dtype can hold; the corpus cache picks the smallest.
_ID_DTYPES = ((256, np.uint8), (65536, np.uint16), (2**32, np.uint32))


def id_dtype(vocab_size: int) -> np.dtype[Any]:
    """The smallest unsigned dtype that holds ids ``0 .. vocab_size - 1``."""
    for limit, dtype in _ID_DTYPES:
        if vocab_size <= limit:
            return np.dtype(dtype)
    raise VocabError(f"a vocabulary of {vocab_size} symbols is too large")


def code_points(text: str) -> np.ndarray:
    """The text's code points as a uint32 array (no Python-level loop)."""
    # surrogatepass: text from argv may carry lone surrogates (surrogateescape);
    # they must reach the unknown-character check, not crash the encoder.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def describe_symbol(symbol: int, byte_level: bool = False) -> str:
    """A printable name for one symbol: 'a', '\\n', ' ' as '␠', or 'U+0301'."""
    if byte_level:
        return f"0x{symbol:02X}" if not (0x21 <= symbol < 0x7F) else chr(symbol)
    char = chr(symbol)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t", " ": "␠"}
    if char in named:
        return named[char]
    if char.isprintable() and not (0xD800 <= symbol <= 0xDFFF):
        return char
    return f"U+{symbol:04X}"


@dataclass(frozen=True)
class Vocab:
    """An ordered set of symbols; a symbol's id is its index.

    Args:
        symbols: sorted, distinct code points (or byte values when ``byte_level``).
        byte_level: symbols are bytes 0..255 and text is handled as UTF-8 bytes.
    """

    symbols: tuple[int, ...]
    byte_level: bool = False
    _lookup: np.ndarray = field(init=False, repr=False, compare=False)
    _byte_lookup: np.ndarray = field(init=False, repr=False, compare=False)
    _symbol_array: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.symbols:
            raise VocabError("a vocabulary needs at least one symbol")
        if list(self.symbols) != sorted(set(self.symbols)):
            raise VocabError("vocabulary symbols must be sorted and distinct")
        limit = 256 if self.byte_level else 0x110000
        if self.symbols[0] < 0 or self.symbols[-1] >= limit:
            raise VocabError("vocabulary symbol out of range")
        if not self.byte_level:
            surrogates = [s for s in self.symbols if 0xD800 <= s <= 0xDFFF]
            if surrogates:  # halves of UTF-16 pairs: not characters, and not writable as UTF-8
                shown = ", ".join(f"U+{s:04X}" for s in surrogates[:5])
                raise VocabError(
                    f"the text holds surrogate code points ({shown}), which are not "
                    "characters; check --encoding, or use --bytes"
                )
        symbol_array = np.asarray(self.symbols, dtype=np.uint32)
        # Lookup table code point -> id; one extra slot (-1) catches everything larger.
        lookup = np.full(int(symbol_array[-1]) + 2, -1, dtype=np.int32)
        lookup[symbol_array] = np.arange(len(self.symbols))
        object.__setattr__(self, "_lookup", lookup)
        byte_lookup = np.full(256, -1, dtype=np.int16)
        small = min(len(lookup) - 1, 256)
        byte_lookup[:small] = lookup[:small]
        object.__setattr__(self, "_byte_lookup", byte_lookup)
        object.__setattr__(self, "_symbol_array", symbol_array)

    # -- construction -------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The vocabulary of ``text``: its distinct code points, sorted."""
        return cls(tuple(int(c) for c in np.unique(code_points(text))))

    @classmethod
    def bytes_vocab(cls) -> Vocab:
        """The byte-level vocabulary: all 256 byte values."""
        return cls(tuple(range(256)), byte_level=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocab:
        """Inverse of :meth:`to_dict` (used by checkpoints and the corpus cache)."""
        try:
            symbols, byte_level = data["symbols"], data["byte_level"]
        except (KeyError, TypeError) as exc:
            raise VocabError(f"malformed vocabulary record: missing {exc}") from None
        # Exactly the types to_dict writes: int() would truncate 104.7 and bool() take
        # "yes" as true, each giving a different vocabulary than the one trained.
        if not isinstance(byte_level, bool):
            raise VocabError(f"malformed vocabulary record: byte_level is {byte_level!r}")
        if not isinstance(symbols, list | tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in symbols
        ):
            raise VocabError("malformed vocabulary record: symbols must be whole numbers")
        return cls(tuple(symbols), byte_level)

    def union(self, other: Vocab) -> Vocab:
        """Every symbol of both, sorted (a fine-tuned run's vocabulary)."""
        if self.byte_level != other.byte_level:
            raise VocabError("a byte-level vocabulary cannot be merged with a character one")
        return Vocab(tuple(sorted(set(self.symbols) | set(other.symbols))), self.byte_level)

    def covers(self, other: Vocab) -> bool:
        """Whether every symbol of ``other`` is one of ours."""
        return self.byte_level == other.byte_level and set(other.symbols) <= set(self.symbols)

    def remap(self, ids: np.ndarray, target: Vocab) -> np.ndarray:
        """Our ids as ids of ``target`` (which covers us), in ``target``'s id dtype."""
        position = {symbol: i for i, symbol in enumerate(target.symbols)}
        table = np.array([position[s] for s in self.symbols], dtype=id_dtype(len(target)))
        return table[np.asarray(ids, dtype=np.int64)]

    def to_dict(self) -> dict[str, Any]:
        """Plain values only, so it can live in a weights-only checkpoint."""
        return {"symbols": list(self.symbols), "byte_level": self.byte_level}

    # -- queries ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, char: object) -> bool:
        if not isinstance(char, str) or len(char) != 1 or self.byte_level:
            return False
        cp = ord(char)
        return cp < len(self._lookup) - 1 and self._lookup[cp] >= 0

    def index_of(self, char: str) -> int | None:
        """The id of one character (a byte-level vocabulary: of its one-byte UTF-8), or None."""
        ids = self.encode(char, on_unknown="drop")
        return int(ids[0]) if len(ids) == 1 else None

    @property
    def start_id(self) -> int:
        """The id a text starts from when nothing comes before it: newline if known, else
        0 (training windows begin after a newline as often as anywhere)."""
        newline = self.index_of("\n")
        return newline if newline is not None else 0

    @property
    def chars(self) -> list[str]:
        """The symbols as printable names (see :func:`describe_symbol`)."""
        return [describe_symbol(s, self.byte_level) for s in self.symbols]

    # -- encoding -----------------------------------------------------------------

    def encode_symbols(
        self,
        symbols: np.ndarray,
        *,
        what: str = "text",
        on_unknown: OnUnknown = "error",
        reporter: Reporter = SILENT,
        dtype: np.dtype[Any] | type = np.int64,
    ) -> np.ndarray:
        """Map an array of symbols (code points or bytes) to ids of ``dtype`` (int64).

        Unknown symbols raise :class:`VocabError` naming the first few, or with
        ``on_unknown="drop"`` are removed with a warning to ``reporter``.
        """
        limit = len(self._lookup) - 1  # the lookup's catch-all slot for larger symbols
        if symbols.dtype == np.uint8:
            # Bytes (and ASCII text) index a 256-entry table that stays in cache: about
            # twice as fast as the full table. A byte's id is at most the byte itself.
            ids = self._byte_lookup[symbols]
        elif np.iinfo(symbols.dtype).max > limit:
            symbols_in_table = np.minimum(symbols, np.array(limit, dtype=symbols.dtype))
        else:
            symbols_in_table = symbols
        if symbols.dtype != np.uint8:
            ids = self._lookup[symbols_in_table]
        unknown = ids < 0
        if not unknown.any():
            return ids.astype(dtype, copy=False)
        message = self._unknown_message(symbols[unknown], what)
        if on_unknown == "error":
            raise VocabError(message + "; drop them with --skip-unknown")
        reporter.warning(message + "; they were dropped")
        return ids[~unknown].astype(dtype, copy=False)

    def encode(
        self,
        text: str,
        *,
        what: str = "text",
        on_unknown: OnUnknown = "error",
        reporter: Reporter = SILENT,
    ) -> np.ndarray:
        """Encode ``text`` to an int64 id array (UTF-8 bytes when byte-level)."""
        if self.byte_level:
            symbols = np.frombuffer(text.encode("utf-8", "surrogateescape"), dtype=np.uint8)
        else:
            symbols = code_points(text)
        return self.encode_symbols(symbols, what=what, on_unknown=on_unknown, reporter=reporter)

    def difference(self, other: Vocab) -> str:
        """What ``other`` has that this vocabulary lacks, and the reverse, in words."""
        ours, theirs = set(self.symbols), set(other.symbols)

        def listed(symbols: set[int]) -> str:
            shown = ", ".join(describe_symbol(s, self.byte_level) for s in sorted(symbols)[:5])
            return shown + (f" and {len(symbols) - 5} more" if len(symbols) > 5 else "")

        parts = []
        if theirs - ours:
            parts.append(f"new {listed(theirs - ours)}")
        if ours - theirs:
            parts.append(f"missing {listed(ours - theirs)}")
        if self.byte_level != other.byte_level:
            parts.append("byte-level in one, characters in the other")
        return "; ".join(parts) or "the same symbols"

    def decode_bytes(self, ids: Sequence[int] | np.ndarray) -> bytes:
        """The UTF-8 bytes of ``ids`` (raw bytes for a byte-level vocabulary)."""
        symbols = self._symbol_array[np.asarray(ids, dtype=np.int64)]
        if self.byte_level:
            return symbols.astype(np.uint8).tobytes()
        return symbols.astype("<u4").tobytes().decode("utf-32-le").encode("utf-8")

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of ``ids``; byte-level invalid UTF-8 shows as U+FFFD."""
        symbols = self._symbol_array[np.asarray(ids, dtype=np.int64)]
        if self.byte_level:
            return symbols.astype(np.uint8).tobytes().decode("utf-8", "replace")
        return symbols.astype("<u4").tobytes().decode("utf-32-le")

    def _unknown_message(self, unknown: np.ndarray, what: str) -> str:
        distinct, first_at = np.unique(unknown, return_index=True)
        in_order = distinct[np.argsort(first_at)]
        shown = ", ".join(
            f"'{describe_symbol(int(s), self.byte_level)}'"
            + ("" if self.byte_level else f" (U+{int(s):04X})")
            for s in in_order[:5]
        )
        more = f" and {len(in_order) - 5} more" if len(in_order) > 5 else ""
        kind = "byte" if self.byte_level else "character"
        kind += "" if len(in_order) == 1 else "s"
        return f"{what} has {len(in_order)} {kind} not in the vocabulary: {shown}{more}"
