"""A checked body becomes a :class:`Generation`: the prompts encoded once, the
sampling settings, the stops, and what the response must show.

The limits that depend on the server (``--max-tokens``, the prompt cap, the batch)
and on the model (its vocabulary, items or a stream) are checked here, each failure
an :class:`~charrnn.serving.schemas.ApiError` naming its ``param``.

Tokens are characters: a prompt's token ids are the model's vocabulary ids (one per
character; one per byte for a byte-level run), and ``usage`` counts characters of
text for the prompt and the completion alike, for a byte-level run too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charrnn.config import Docs
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import SampleSettings
from charrnn.serving.chat import ChatTemplate
from charrnn.serving.engine import Engine
from charrnn.serving.schemas import ApiError, ChatBody, CompletionBody, Sampling

CHAT_MAX_TOKENS = 500  # a chat reply's default cap (a completion's is the API's 16)

# (character, its log-probability, its top alternatives) per token, as the engine
# reports a drawn one; the first character of a scored prompt has no log-probability.
Entry = tuple[str, float | None, dict[str, float] | None]


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; over a cap is a 400 (the body's size: 413)."""

    max_tokens: int = 4096
    max_prompt: int = 100_000  # characters
    max_n: int = 16
    max_prompts: int = 32  # prompts in one list
    max_body: int = 1_000_000  # bytes
    max_stops: int = 4
    read_timeout_s: float = 10.0  # for a request's headers, and again for its body


@dataclass
class Served:
    """One run behind the API: its id, engine, chat template and the facts
    ``/v1/models`` shows."""

    id: str
    model: CharRNN
    vocab: Vocab
    engine: Engine
    docs: Docs
    facts: dict[str, Any] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))
    chat: ChatTemplate = field(default_factory=ChatTemplate)


@dataclass(frozen=True)
class Prompt:
    """One prompt: its text, its own ids, and the ids the model is primed with (a
    newline first for an items run, the start symbol for an empty stream prompt)."""

    text: str
    ids: np.ndarray
    primer: np.ndarray


@dataclass(frozen=True)
class Generation:
    """A checked request: ``n`` choices for each prompt, choice ``p * n + j`` being the
    ``j``-th for prompt ``p`` (the order the API defines)."""

    served: Served
    prompts: list[Prompt]
    n: int
    max_tokens: int
    settings: SampleSettings
    stops: tuple[str, ...]
    seed: int | None
    stream: bool
    include_usage: bool
    echo: bool = False
    logprobs: int | None = None  # alternatives per token, when logprobs are asked for
    opening: str = ""  # text each choice starts with (an item's beginning, in chat)

    @property
    def choices(self) -> int:
        return len(self.prompts) * self.n

    @property
    def prompt_tokens(self) -> int:
        return sum(len(p.text) for p in self.prompts)


def completion(
    body: CompletionBody, models: dict[str, Served], limits: Limits, max_batch: int
) -> Generation:
    """``/v1/completions``: the prompt (every form of it) encoded once."""
    served = _model(body, models)
    n = _n(body, limits, max_batch)
    if body.best_of not in (None, n):
        message = "best_of is not supported (leave it out or equal to n)"
        raise ApiError(400, message, param="best_of")
    forms = body.prompt
    if isinstance(forms, str):
        forms = [forms]
    if not forms:
        raise ApiError(400, "prompt is an empty list", param="prompt", code="invalid_value")
    if isinstance(forms[0], int):
        forms = [forms]  # one prompt given as ids
    if len(forms) > limits.max_prompts:
        raise ApiError(
            400, f"prompt lists {len(forms)} prompts; this server takes at most "
            f"{limits.max_prompts} in one request", param="prompt", code="too_many_prompts",
        )  # fmt: skip
    prompts = [_prompt(form, served, limits, "prompt") for form in forms]
    return Generation(
        served=served,
        prompts=prompts,
        n=n,
        max_tokens=_max_tokens(body.max_tokens, 16, limits),
        settings=_settings(body, served),
        stops=_stops(body, served, limits),
        seed=body.seed,
        stream=bool(body.stream),
        include_usage=_include_usage(body),
        echo=bool(body.echo),
        logprobs=body.logprobs,
    )


def chat(body: ChatBody, models: dict[str, Served], limits: Limits, max_batch: int) -> Generation:
    """``/v1/chat/completions``: the messages written out with the model's chat
    template (see :mod:`charrnn.serving.chat`); an items run answers with one item."""
    served = _model(body, models)
    messages = [(m.role, m.text) for m in body.messages]
    stops = _stops(body, served, limits)
    opening = ""
    if served.docs.on:
        users = [text for role, text in messages if role == "user"]
        opening = users[-1] if users else ""
        prompt = _prompt(opening, served, limits, "messages")
    else:
        text = served.chat.render(messages)
        prompt = _prompt(text, served, limits, "messages", template=served.chat)
        stops = (*stops, served.chat.stop)
    asked = body.max_completion_tokens
    if asked is None:
        asked = body.max_tokens
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    return Generation(
        served=served,
        prompts=[prompt],
        n=_n(body, limits, max_batch),
        max_tokens=_max_tokens(asked, min(CHAT_MAX_TOKENS, limits.max_tokens), limits),
        settings=_settings(body, served),
        stops=stops,
        seed=body.seed,
        stream=bool(body.stream),
        include_usage=_include_usage(body),
        logprobs=logprobs,
        opening=opening,
    )


# -- the shared fields ---------------------------------------------------------------


def _model(body: Sampling, models: dict[str, Served]) -> Served:
    if body.model not in models:
        known = ", ".join(sorted(models))
        raise ApiError(
            400, f"unknown model {body.model!r}; this server has: {known}", param="model",
            code="model_not_found",
        )  # fmt: skip
    return models[body.model]


def _n(body: Sampling, limits: Limits, max_batch: int) -> int:
    n = body.n if body.n is not None else 1
    cap = min(limits.max_n, max_batch)
    if n > cap:
        raise ApiError(400, f"n must be at most {cap}, got {n}", param="n", code="invalid_value")
    return n


def _max_tokens(asked: int | None, default: int, limits: Limits) -> int:
    if asked is None:
        return default
    if asked > limits.max_tokens:
        raise ApiError(
            400, f"max_tokens must be at most {limits.max_tokens} (characters), got {asked}",
            param="max_tokens", code="invalid_value",
        )  # fmt: skip
    return asked


def _settings(body: Sampling, served: Served) -> SampleSettings:
    top_k = body.top_k or 0
    if top_k > len(served.vocab):
        raise ApiError(
            400, f"top_k must be at most the vocabulary's {len(served.vocab)}, got {top_k}",
            param="top_k", code="invalid_value",
        )  # fmt: skip
    return SampleSettings(
        temperature=1.0 if body.temperature is None else float(body.temperature),
        top_k=top_k,
        top_p=1.0 if body.top_p is None else float(body.top_p),
    )


def _stops(body: Sampling, served: Served, limits: Limits) -> tuple[str, ...]:
    stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if any(not s for s in stops):
        raise ApiError(400, "a stop string must not be empty", param="stop", code="invalid_value")
    if len(stops) > limits.max_stops:
        raise ApiError(
            400, f"at most {limits.max_stops} stop strings", param="stop", code="invalid_value"
        )
    if served.docs.on:  # an item ends at its separator
        stops.insert(0, served.docs.separator)
    return tuple(stops)


def _include_usage(body: Sampling) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


# -- prompts -------------------------------------------------------------------------


def _prompt(
    form: str | list[int],
    served: Served,
    limits: Limits,
    param: str,
    template: ChatTemplate | None = None,
) -> Prompt:
    """One prompt as text and ids, whichever form it came in."""
    vocab = served.vocab
    if isinstance(form, str):
        text = form
        _check_length(len(text), limits, param)
        ids = vocab.encode(text, on_unknown="drop").astype(np.int64)
        if not vocab.byte_level and len(ids) != len(text):
            raise _unknown(text, vocab, param, template)
    else:
        _check_length(len(form), limits, param)
        ids = np.asarray(form, dtype=np.int64) if form else np.zeros(0, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(vocab)):
            bad = next(int(i) for i in ids if not 0 <= i < len(vocab))
            unit = "byte" if vocab.byte_level else "character"
            raise ApiError(
                400, f"token id {bad} is out of range: a token id is this model's vocabulary "
                f"id of one {unit}, 0 to {len(vocab) - 1}", param=param, code="invalid_token_id",
            )  # fmt: skip
        text = vocab.decode(ids)
    if served.docs.on:
        newline = vocab.index_of("\n")
        primer = np.concatenate([[newline if newline is not None else 0], ids]).astype(np.int64)
    elif len(ids) == 0:
        primer = np.array([vocab.start_id], dtype=np.int64)
    else:
        primer = ids
    return Prompt(text=text, ids=ids, primer=primer)


def _check_length(length: int, limits: Limits, param: str) -> None:
    if length > limits.max_prompt:
        raise ApiError(
            400, f"the prompt has {length} characters; this server takes at most "
            f"{limits.max_prompt}", param=param, code="prompt_too_long",
        )  # fmt: skip


def _unknown(text: str, vocab: Vocab, param: str, template: ChatTemplate | None) -> ApiError:
    """Which characters the model does not know, in words an API user can act on."""
    missing = [c for c in dict.fromkeys(text) if c not in vocab]
    shown = ", ".join(repr(c) for c in missing[:8]) + (" and more" if len(missing) > 8 else "")
    if template is not None and any(c in template.format for c in missing):
        return ApiError(
            400, f"the server's chat template writes characters this model does not know "
            f"({shown}); start the server with a --chat-template in the model's own characters",
            param=param, code="unknown_characters",
        )  # fmt: skip
    return ApiError(
        400, f"{param} holds characters this model does not know: {shown} (its vocabulary "
        f"has {len(vocab)} characters; leave these out or replace them)", param=param,
        code="unknown_characters",
    )  # fmt: skip
