"""The API's shapes: request bodies as pydantic models, and the error body.

One set of sampling fields (:class:`Sampling`) is shared by ``/v1/completions``
(:class:`CompletionBody`) and ``/v1/chat/completions`` (:class:`ChatBody`). The
ranges that do not depend on the server are checked here; those that do (the
server's ``--max-tokens``, a model's vocabulary) where the body becomes a job
(:mod:`charrnn.serving.prompts`). Every failure, from bytes that are not UTF-8 to a
field of the wrong type, is an :class:`ApiError`: a 400 (or another 4xx) in the
OpenAI shape ``{"error": {"message", "type", "param", "code"}}``, never a 500.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from starlette.responses import Response

from charrnn.serving.engine import TOP_LOGPROBS

MAX_DEPTH = 32  # JSON nesting a body may have; the API's own bodies need 4


class ApiError(Exception):
    """An error answered in the API's shape (``status``, and the body's four fields)."""

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

    def body(self) -> bytes:
        """The JSON error body. A message may quote what the client sent, lone
        surrogates included, so it is written with escapes (always valid UTF-8)."""
        error = {"message": self.message, "type": self.kind, "param": self.param}
        return json.dumps({"error": {**error, "code": self.code}}).encode()

    def response(self) -> Response:
        return Response(self.body(), self.status, self.headers, media_type="application/json")


# -- the bodies ----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StreamOptions(_Strict):
    include_usage: StrictBool = False


class Sampling(_Strict):
    """The fields every generating endpoint takes. ``top_k`` is ours (as llama.cpp's
    and vLLM's servers take it); the penalties and ``logit_bias`` are accepted only
    when they change nothing."""

    model: StrictStr
    max_tokens: Annotated[StrictInt, Field(ge=0)] | None = None
    temperature: Annotated[StrictFloat, Field(ge=0, le=2)] | None = None
    top_p: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    top_k: Annotated[StrictInt, Field(ge=0)] | None = None
    n: Annotated[StrictInt, Field(ge=1)] | None = None
    stop: StrictStr | list[StrictStr] | None = None
    seed: Annotated[StrictInt, Field(ge=0, lt=2**63)] | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None
    frequency_penalty: Literal[0] | None = None
    presence_penalty: Literal[0] | None = None
    logit_bias: dict[str, Any] | None = Field(default=None, max_length=0)


TokenIds = list[StrictInt]


class CompletionBody(Sampling):
    """``POST /v1/completions``: ``prompt`` is a string, a list of strings, a list of
    token ids (a character model's ids are its vocabulary's), or a list of id lists."""

    prompt: Annotated[
        StrictStr | list[StrictStr] | TokenIds | list[TokenIds],
        Field(union_mode="left_to_right"),
    ] = ""
    echo: StrictBool | None = None
    logprobs: Annotated[StrictInt, Field(ge=0, le=TOP_LOGPROBS)] | None = None
    best_of: Annotated[StrictInt, Field(ge=1)] | None = None
    suffix: Literal[""] | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    """One chat message; only its role and text matter to a character model (a
    ``name`` and the like are allowed and ignored)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[TextPart] | None = None

    @property
    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatBody(Sampling):
    """``POST /v1/chat/completions``."""

    messages: Annotated[list[Message], Field(min_length=1)]
    max_completion_tokens: Annotated[StrictInt, Field(ge=0)] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=TOP_LOGPROBS)] | None = None
    parallel_tool_calls: StrictBool | None = None


Body = TypeVar("Body", bound=BaseModel)

_CODES = {"extra_forbidden": "unknown_parameter", "missing": "missing_parameter"}
_PROMPT_FORMS = (
    "prompt must be a string, a list of strings, a list of token ids (integers) or "
    "a list of lists of token ids"
)


def parse_body(raw: bytes, schema: type[Body]) -> Body:
    """``raw`` checked as JSON and as ``schema``; an :class:`ApiError` (400) if not.

    Refused: bytes that are not UTF-8, text that is not JSON, NaN or infinity for a
    number, an
    integer of more digits than Python converts, nesting deeper than
    :data:`MAX_DEPTH`, a lone surrogate anywhere (a key included), and any field the
    schema does not take or takes in another form.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8", code="invalid_encoding") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise ApiError(400, f"the body nests deeper than {MAX_DEPTH}", code="too_deep") from None
    except ValueError as exc:  # not JSON, or an integer past the int-str limit
        raise ApiError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None
    _check_tree(data)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", code="invalid_type")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise _as_api_error(exc) from None


def _check_tree(data: Any) -> None:
    """No nesting past :data:`MAX_DEPTH`, no string (key or value) that cannot be UTF-8."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ApiError(400, f"the body nests deeper than {MAX_DEPTH}", code="too_deep")
        if isinstance(node, dict):
            for key, value in node.items():
                _check_text(key)
                todo.append((value, depth + 1))
        elif isinstance(node, list):
            todo.extend((value, depth + 1) for value in node)
        elif isinstance(node, str):
            _check_text(node)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "backslashreplace").decode()[:40]
        raise ApiError(
            400, f"the body holds a lone surrogate (an invalid \\u escape) in {shown!r}",
            code="invalid_unicode",
        ) from None  # fmt: skip


def _as_api_error(exc: ValidationError) -> ApiError:
    """pydantic's first error in the API's shape: ``param`` is the field's dotted path
    (``stream_options.include_usage``, ``messages.0.role``)."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"]]
    if loc and loc[0] == "prompt":
        return ApiError(400, _PROMPT_FORMS, param="prompt", code="invalid_type")
    # A union's error names the member tried ("str", "list[...]"); the field is enough.
    path = [part for part in loc if not _is_type_name(part)]
    param = ".".join(path) or None
    kind = error["type"]
    code = _CODES.get(kind, "invalid_type" if kind.endswith("_type") else "invalid_value")
    if kind == "extra_forbidden":
        message = f"unknown parameter {param!r}"
    elif kind == "missing":
        message = f"{param} is required"
    else:
        message = f"{param}: {error['msg']}" if param else str(error["msg"])
        if "input" in error and kind != "missing" and not isinstance(error["input"], dict):
            message += f", got {json.dumps(error['input'])[:60]}"
    return ApiError(400, message, param=param, code=code)


def _is_type_name(part: str) -> bool:
    return (
        part in {"str", "int", "float", "bool", "list", "dict"}
        or "[" in part
        or (part.startswith(("constrained-", "literal", "function-")))
    )
