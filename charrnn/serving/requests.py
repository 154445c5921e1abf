"""A completion request checked field by field, as the OpenAI completions API defines
the fields (characters are the tokens), and errors in that API's own shape.

Every bad value is a 400 naming its ``param``; nothing unchecked reaches the engine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from starlette.responses import JSONResponse

from charrnn.config import Docs
from charrnn.data.vocab import Vocab
from charrnn.errors import CharRNNError
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import SampleSettings
from charrnn.serving.engine import TOP_LOGPROBS, Engine


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; over a cap is a 400 (the body's size: 413)."""

    max_tokens: int = 4096
    max_prompt: int = 100_000  # characters
    max_n: int = 16
    max_body: int = 1_000_000  # bytes
    max_stops: int = 4


@dataclass
class Served:
    """One run behind the API: its id, engine and the facts /v1/models shows."""

    id: str
    model: CharRNN
    vocab: Vocab
    engine: Engine
    docs: Docs
    facts: dict[str, Any] = field(default_factory=dict)
    created: int = field(default_factory=lambda: int(time.time()))


class ApiError(Exception):
    """An error answered in the API's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass(frozen=True)
class Completion:
    """A checked completion request."""

    served: Served
    prompt: str
    prompt_ids: np.ndarray  # what the model is primed with
    max_tokens: int
    settings: SampleSettings
    n: int
    stops: tuple[str, ...]
    seed: int | None
    stream: bool
    include_usage: bool
    echo: bool
    logprobs: int | None


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, f"{name} must be a number", param=name, code="invalid_type")
    if not math.isfinite(value) or not low <= value <= high:
        raise ApiError(
            400, f"{name} must be a finite number in [{low}, {high}], got {value}", param=name,
            code="invalid_value",
        )  # fmt: skip
    return float(value)


def _integer(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer", param=name, code="invalid_type")
    if not low <= value <= high:
        raise ApiError(
            400, f"{name} must be in [{low}, {high}], got {value}", param=name,
            code="invalid_value",
        )  # fmt: skip
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false", param=name, code="invalid_type")
    return value


def _stops(body: dict[str, Any], limits: Limits) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, "stop must be a non-empty string or a list of them", param="stop")
    if len(stops) > limits.max_stops:
        raise ApiError(400, f"at most {limits.max_stops} stop strings", param="stop")
    return tuple(stops)


_NEUTRAL = {"frequency_penalty": 0, "presence_penalty": 0, "suffix": None, "logit_bias": None}


_KNOWN = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "stop", "n", "seed",
    "stream", "stream_options", "echo", "logprobs", "user", "best_of", *_NEUTRAL,
}  # fmt: skip


def check_completion(
    body: Any, models: dict[str, Served], limits: Limits, max_batch: int
) -> Completion:
    """The request ``body`` checked field by field; an :class:`ApiError` (400) if not."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise ApiError(400, f"unknown parameter {unknown[0]!r}", param=unknown[0])
    for option, neutral in _NEUTRAL.items():
        if body.get(option, neutral) not in (neutral, None, {}):
            raise ApiError(400, f"{option} is not supported by this server", param=option)
    name = body.get("model")
    if not isinstance(name, str) or name not in models:
        known = ", ".join(sorted(models))
        raise ApiError(
            400, f"unknown model {name!r}; this server has: {known}", param="model",
            code="model_not_found",
        )  # fmt: skip
    served = models[name]
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]  # the client libraries may send a one-element list
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string", param="prompt", code="invalid_type")
    if len(prompt) > limits.max_prompt:
        raise ApiError(
            400, f"prompt has {len(prompt)} characters; this server takes at most "
            f"{limits.max_prompt}", param="prompt", code="prompt_too_long",
        )  # fmt: skip
    try:
        ids = served.vocab.encode(prompt, what="prompt", on_unknown="error")
    except CharRNNError as exc:
        raise ApiError(400, str(exc), param="prompt", code="unknown_characters") from None
    max_tokens = _integer(body, "max_tokens", 16, 0, limits.max_tokens)
    n = _integer(body, "n", 1, 1, min(limits.max_n, max_batch))
    best_of = body.get("best_of")
    if best_of not in (None, n):
        raise ApiError(
            400, "best_of is not supported (leave it out or equal to n)", param="best_of"
        )
    settings = SampleSettings(
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 1e-9, 1.0),
        top_k=_integer(body, "top_k", 0, 0, len(served.vocab)),
    )
    logprobs = _integer(body, "logprobs", None, 0, TOP_LOGPROBS)
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ApiError(400, "stream_options must be an object", param="stream_options")
    stops = _stops(body, limits)
    docs = served.docs
    primer = np.asarray(ids, dtype=np.int64)
    if docs.on:  # an item starts from a newline, as training and `sample` start it
        newline = served.vocab.index_of("\n")
        primer = np.concatenate([[newline if newline is not None else 0], primer])
        stops = (docs.separator, *stops)
    elif len(primer) == 0:
        primer = np.array([served.vocab.start_id], dtype=np.int64)
    return Completion(
        served=served,
        prompt=prompt,
        prompt_ids=primer,
        max_tokens=max_tokens,
        settings=settings,
        n=n,
        stops=stops,
        seed=_integer(body, "seed", None, 0, 2**63 - 1),
        stream=_flag(body, "stream"),
        include_usage=bool(stream_options.get("include_usage", False)),
        echo=_flag(body, "echo"),
        logprobs=logprobs,
    )


@torch.inference_mode()
def prompt_logprobs(
    model: CharRNN, vocab: Vocab, ids: np.ndarray, top: int
) -> list[tuple[str, float | None, dict[str, float] | None]]:
    """Each prompt character with its log-probability given those before it (the
    first has none), from a zero state, as ``charrnn score`` computes them."""
    out: list[tuple[str, float | None, dict[str, float] | None]] = []
    if len(ids) == 0:
        return out
    out.append((vocab.decode(ids[:1]), None, None))
    device = model.head.weight.device
    state = None
    chunk = 4096
    for start in range(0, len(ids) - 1, chunk):
        y = torch.as_tensor(ids[start + 1 : start + chunk + 1], device=device).long()
        x = torch.as_tensor(ids[start : start + len(y)], device=device).long()
        logits, state = model(x.unsqueeze(0), state)
        logp = F.log_softmax(logits[0].float(), dim=-1)  # (T, V)
        chosen = logp.gather(1, y[:, None])[:, 0].tolist()
        values, order = logp.topk(min(max(top, 1), len(vocab)), dim=-1)
        for j, char_id in enumerate(y.tolist()):
            alternatives = {
                vocab.decode([int(i)]): float(v)
                for v, i in zip(values[j].tolist(), order[j].tolist(), strict=True)
            }
            out.append((vocab.decode([char_id]), chosen[j], alternatives if top else None))
    return out


def logprobs_body(
    entries: Sequence[tuple[str, float | None, dict[str, float] | None]], offset: int
) -> dict[str, Any]:
    tokens, values, tops, offsets = [], [], [], []
    for char, value, alternatives in entries:
        tokens.append(char)
        values.append(value)
        tops.append(alternatives)
        offsets.append(offset)
        offset += len(char)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }
