"""Responses in the API's shapes: one renderer per endpoint, for a whole response and
for its stream of server-sent events alike.

A stream's events share one envelope (``id``, ``object``, ``created``, ``model``),
written once per response as bytes; each event splices its choices into it, so the
per-event cost is the choices' JSON only.

Logprobs are reported per character of the text, so the tokens always join to it:
a byte-level run draws a character's UTF-8 bytes one at a time, and
:class:`Tokens` groups them back into the character (its log-probability is the
sum of its bytes', its alternatives those of its first byte).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from charrnn.serving.prompts import Entry, Generation
from charrnn.serving.schemas import ApiError

DONE = b"data: [DONE]\n\n"
REPLACEMENT = "\ufffd"  # what a byte that is not a whole character decodes to


@dataclass
class Piece:
    """What one choice gained since the last event: text, its tokens' logprobs (when
    asked for), and the finish reason once the choice has ended."""

    index: int
    text: str
    tokens: list[Entry] = field(default_factory=list)
    finish_reason: str | None = None


class Tokens:
    """One choice's logprob entries paired with its text, one token per character.

    The engine reports an entry per symbol drawn, and may report it before the text
    (a possible stop string is held back) or after it (a character's first bytes).
    Entries wait here until their text comes; those of text cut by a stop are dropped.
    """

    def __init__(self, byte_level: bool) -> None:
        self.byte_level = byte_level
        self.pending: deque[Entry] = deque()

    def take(self, text: str, entries: list[Entry], final: bool = False) -> list[Entry]:
        """The tokens of ``text``, given the ``entries`` that came with it."""
        self.pending.extend(entries)
        out: list[Entry] = []
        for char in text:
            if not self.byte_level:
                out.append(self._merge(char, 1))
            elif char < "\x80":
                # An ASCII byte is its own character; non-ASCII entries still waiting
                # belonged to a byte sequence that was not valid UTF-8 (shown as U+FFFD).
                while self.pending and self.pending[0][0] >= "\x80" and out:
                    out[-1] = _join(out[-1], self.pending.popleft())
                out.append(self._merge(char, 1))
            elif char == REPLACEMENT:
                out.append(self._merge(char, 1))
            else:
                out.append(self._merge(char, len(char.encode("utf-8"))))
        if final:
            self.pending.clear()
        return out

    def _merge(self, char: str, count: int) -> Entry:
        token: Entry = (char, None, None)
        for k in range(count):
            if not self.pending:
                break
            entry = self.pending.popleft()
            token = (char, entry[1], entry[2]) if k == 0 else _join(token, entry)
        return token


def _join(token: Entry, entry: Entry) -> Entry:
    value = None if token[1] is None or entry[1] is None else token[1] + entry[1]
    return token[0], value, token[2]


# -- the envelope --------------------------------------------------------------------


class Renderer:
    """The parts both endpoints share: the SSE envelope, usage, and errors."""

    object_name = ""
    chunk_name = ""

    def __init__(self, gen: Generation, response_id: str, created: int) -> None:
        self.gen = gen
        self.meta = {"id": response_id, "created": created, "model": gen.served.id}
        head = json.dumps({"id": response_id, "object": self.chunk_name})[:-1]
        tail = json.dumps({"created": created, "model": gen.served.id})[1:-1]
        self._head = f'data: {head}, {tail}, "choices": ['.encode()
        self.completion_chars = 0
        # Per prompt: its scored tokens (echo with logprobs), set once the engine has
        # scored them, before the first event that shows them.
        self.echo: list[list[Entry]] = []

    def event(self, choices: list[str]) -> bytes:
        """One stream event holding ``choices`` (each already JSON)."""
        return self._head + ",".join(choices).encode() + b"]}\n\n"

    def usage(self) -> dict[str, int]:
        prompt = self.gen.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": self.completion_chars,
            "total_tokens": prompt + self.completion_chars,
        }

    def usage_event(self) -> bytes:
        """The stream's last event before ``[DONE]`` when ``include_usage`` is set."""
        return self._head + b'], "usage": ' + json.dumps(self.usage()).encode() + b"}\n\n"

    def opening(self) -> bytes | None:
        """The stream's first event, if it has one before any text."""
        return None

    def chunk(self, pieces: list[Piece]) -> bytes:
        """The event(s) with what ``pieces`` add to their choices."""
        raise NotImplementedError

    def whole(self, pieces: list[Piece]) -> bytes:
        """The whole response's JSON, from each choice's pieces merged into one."""
        raise NotImplementedError

    @staticmethod
    def error_event(error: ApiError) -> bytes:
        """An error in the middle of a stream (the server stopping, say)."""
        return b"data: " + error.body() + b"\n\n"


# -- /v1/completions -----------------------------------------------------------------


class CompletionRenderer(Renderer):
    """``text_completion`` objects: ``choices[i].text`` and the legacy logprobs."""

    object_name = chunk_name = "text_completion"

    def __init__(self, gen: Generation, response_id: str, created: int) -> None:
        super().__init__(gen, response_id, created)
        self.offsets = [0] * gen.choices

    def _choice(self, index: int, text: str, tokens: list[Entry], finish: str | None) -> str:
        if self.gen.logprobs is None:  # the common case: only the text is encoded
            reason = "null" if finish is None else f'"{finish}"'
            return (
                f'{{"text": {json.dumps(text)}, "index": {index}, "logprobs": null, '
                f'"finish_reason": {reason}}}'
            )
        logprobs = self._logprobs(index, tokens)
        self.offsets[index] += len(text)
        return json.dumps(
            {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}
        )

    def _logprobs(self, index: int, tokens: list[Entry]) -> dict[str, Any]:
        offsets, at = [], self.offsets[index]
        for char, _, _ in tokens:
            offsets.append(at)
            at += len(char)
        return {
            "tokens": [t[0] for t in tokens],
            "token_logprobs": [t[1] for t in tokens],
            "top_logprobs": [t[2] for t in tokens],
            "text_offset": offsets,
        }

    def _opening(self, index: int) -> tuple[str, list[Entry]]:
        if not self.gen.echo:
            return "", []
        prompt = index // self.gen.n
        return self.gen.prompts[prompt].text, self.echo[prompt] if self.echo else []

    def opening(self) -> bytes | None:
        """The echoed prompts, as the stream's first event (None without echo)."""
        if not self.gen.echo:
            return None
        choices = [self._choice(i, *self._opening(i), None) for i in range(self.gen.choices)]
        return self.event(choices)

    def chunk(self, pieces: list[Piece]) -> bytes:
        """One stream event with what ``pieces`` add."""
        self.completion_chars += sum(len(p.text) for p in pieces)
        choices = [self._choice(p.index, p.text, p.tokens, p.finish_reason) for p in pieces]
        return self.event(choices)

    def whole(self, pieces: list[Piece]) -> bytes:
        """The whole response, from each choice's ``pieces`` merged into one."""
        choices = []
        for p in pieces:
            text, tokens = self._opening(p.index)
            self.completion_chars += len(p.text)
            choices.append(
                self._choice(p.index, text + p.text, tokens + p.tokens, p.finish_reason or "length")
            )
        head = json.dumps({**self.meta, "object": self.object_name})[:-1]
        usage = json.dumps(self.usage())
        return f'{head}, "choices": [{",".join(choices)}], "usage": {usage}}}'.encode()


# -- /v1/chat/completions ------------------------------------------------------------


class ChatRenderer(Renderer):
    """``chat.completion`` objects and ``chat.completion.chunk`` events: the role
    first, then ``delta.content``, then a chunk per choice with its finish reason."""

    object_name = "chat.completion"
    chunk_name = "chat.completion.chunk"

    def _logprobs(self, tokens: list[Entry]) -> dict[str, Any] | None:
        if self.gen.logprobs is None:
            return None
        return {
            "content": [
                {
                    **_token(char, value),
                    "top_logprobs": [_token(c, v) for c, v in (top or {}).items()],
                }
                for char, value, top in tokens
            ],
            "refusal": None,
        }

    def opening(self) -> bytes | None:
        """Each choice's role (and, for an items run, the item's beginning)."""
        delta = {"role": "assistant", "content": self.gen.opening}
        return self.event(
            [
                json.dumps({"index": i, "delta": delta, "logprobs": None, "finish_reason": None})
                for i in range(self.gen.choices)
            ]
        )

    def chunk(self, pieces: list[Piece]) -> bytes:
        """One stream event with the new text of ``pieces``."""
        self.completion_chars += sum(len(p.text) for p in pieces)
        choices = [self._content(p) for p in pieces if p.text or p.tokens]
        finished = [
            json.dumps(
                {"index": p.index, "delta": {}, "logprobs": None, "finish_reason": p.finish_reason}
            )
            for p in pieces
            if p.finish_reason
        ]
        return b"".join(self.event(group) for group in (choices, finished) if group)

    def _content(self, p: Piece) -> str:
        if self.gen.logprobs is None:  # the common case: only the text is encoded
            return (
                f'{{"index": {p.index}, "delta": {{"content": {json.dumps(p.text)}}}, '
                '"logprobs": null, "finish_reason": null}'
            )
        delta = {"content": p.text}
        logprobs = self._logprobs(p.tokens)
        return json.dumps(
            {"index": p.index, "delta": delta, "logprobs": logprobs, "finish_reason": None}
        )

    def whole(self, pieces: list[Piece]) -> bytes:
        """The whole ``chat.completion``, from each choice's pieces merged into one."""
        choices = []
        for p in pieces:
            self.completion_chars += len(p.text)
            message = {"role": "assistant", "content": self.gen.opening + p.text}
            choice = {
                "index": p.index,
                "message": message,
                "logprobs": self._logprobs(p.tokens),
                "finish_reason": p.finish_reason or "length",
            }
            choices.append(json.dumps(choice))
        head = json.dumps({**self.meta, "object": self.object_name})[:-1]
        usage = json.dumps(self.usage())
        return f'{head}, "choices": [{",".join(choices)}], "usage": {usage}}}'.encode()


def _token(char: str, value: float | None) -> dict[str, Any]:
    return {"token": char, "logprob": value, "bytes": list(char.encode("utf-8"))}
