"""The API of ``charrnn serve`` in process: the Starlette app over real engines and
tiny models, driven through ``httpx.ASGITransport`` (no socket, no server process).

Covered here: the guard (Host, Origin, JSON bodies), hostile bodies answered in the
API's 400 shape, the chat endpoint and its template, prompt lists and token ids,
byte-level logprobs, a full queue's 503, and a non-streamed request whose client
hangs up freeing its rows. The live server and the real client libraries are in
``test_serve_clients.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_text, tiny_config, wait_until

from charrnn.config import DataConfig
from charrnn.errors import ConfigError
from charrnn.events import Silent
from charrnn.training.launch import train

httpx = pytest.importorskip("httpx", reason="the serve extra's test tools are not installed")
pytest.importorskip("starlette", reason="charrnn[serve] is not installed")

from charrnn.sampling.sampler import SampleSettings  # noqa: E402
from charrnn.serving.api import build_app  # noqa: E402
from charrnn.serving.chat import ChatTemplate  # noqa: E402
from charrnn.serving.engine import Job, wait_idle  # noqa: E402
from charrnn.serving.guard import Access  # noqa: E402
from charrnn.serving.prompts import Limits, Served  # noqa: E402
from charrnn.serving.render import Tokens  # noqa: E402
from charrnn.serving.server import ServeOptions, check_exposure, load_served  # noqa: E402

BYTES_TEXT = "é😀ab "


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve-api")
    cache = folder / "cache"
    prose = folder / "prose.txt"
    dialogue = "User:\nthe cat sat\n\nAssistant:\nand the dog ran far away.\n\n" * 20
    prose.write_text(make_text(8000) + "\n\n" + dialogue, encoding="utf-8")
    names = folder / "names.txt"
    words = make_text(4000, seed=3).replace(".", "").split()
    names.write_text("\n".join(dict.fromkeys(w.lower() for w in words)) + "\n", encoding="utf-8")
    raw = folder / "bytes.txt"
    raw.write_text(BYTES_TEXT * 800, encoding="utf-8")
    out = {"prose": folder / "prose", "names": folder / "names", "bytes": folder / "bytes"}
    train(tiny_config(prose, steps=60), out["prose"], reporter=Silent(), cache_dir=cache)
    items = tiny_config(names, steps=40, seq_len=24)
    items = type(items)(
        DataConfig(str(names), val_frac=0.2, docs="lines"), items.model, items.train
    )
    train(items, out["names"], reporter=Silent(), cache_dir=cache)
    byte = tiny_config(raw, steps=150)
    byte = type(byte)(DataConfig(str(raw), val_frac=0.1, byte_level=True), byte.model, byte.train)
    train(byte, out["bytes"], reporter=Silent(), cache_dir=cache)
    return out


@pytest.fixture(scope="module")
def models(runs: dict[str, Path]) -> Iterator[dict[str, Served]]:
    served = load_served([runs["prose"], runs["names"], runs["bytes"]], ServeOptions(device="cpu"))
    yield served
    for s in served.values():
        s.engine.close()


def call(
    app: Any,
    path: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    host: str = "127.0.0.1:8000",
) -> httpx.Response:
    """One request to ``app`` in process; a dict body goes as JSON."""
    sent = {"Host": host, **({"Content-Type": "application/json"} if method == "POST" else {})}
    sent.update(headers or {})
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
            return await client.request(method, path, content=content, headers=sent, timeout=60)

    return asyncio.run(go())


def events(reply: httpx.Response) -> list[Any]:
    """A stream's events, decoded ("[DONE]" kept as the string)."""
    lines = [line[6:] for line in reply.text.split("\n\n") if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def app(models: dict[str, Served]) -> Any:
    return build_app(models, limits=Limits(max_tokens=2000), max_batch=64)


def _error(reply: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


# -- the guard -----------------------------------------------------------------------


def test_another_host_is_refused_and_the_bound_ones_answer(app: Any) -> None:
    for host in ("attacker.example", "attacker.example:8000", "127.0.0.1.nip.io:8000"):
        error = _error(call(app, "/health", method="GET", host=host), 403)
        assert error["code"] == "host_not_allowed" and "--allow-host" in error["message"]
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert call(app, "/health", method="GET", host=host).status_code == 200, host


def test_another_origin_is_refused_and_the_pages_own_answers(app: Any) -> None:
    body = {"model": "prose", "prompt": "a", "max_tokens": 3}
    hostile = call(app, "/v1/completions", body, headers={"Origin": "http://attacker.example"})
    assert _error(hostile, 403)["code"] == "origin_not_allowed"
    null = call(app, "/v1/completions", body, headers={"Origin": "null"})
    assert null.status_code == 403
    own = call(app, "/v1/completions", body, headers={"Origin": "http://127.0.0.1:8000"})
    assert own.status_code == 200, own.text


def test_allowed_hosts_and_origins_get_in(models: dict[str, Served]) -> None:
    access = Access.bound_to("127.0.0.1", ["box.lan"], ["http://localhost:3000"])
    app = build_app(models, access=access)
    assert call(app, "/health", method="GET", host="box.lan:8000").status_code == 200
    origin = {"Origin": "http://localhost:3000"}
    body = {"model": "prose", "prompt": "a", "max_tokens": 2}
    reply = call(app, "/v1/completions", body, headers=origin)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://localhost:3000"
    preflight = {**origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"}  # fmt: skip
    assert call(app, "/v1/completions", method="OPTIONS", headers=preflight).status_code == 200
    wildcard = build_app(models, access=Access.bound_to("0.0.0.0"))
    assert call(wildcard, "/health", method="GET", host="192.168.1.7:8000").status_code == 200
    assert call(wildcard, "/health", method="GET", host="evil.example").status_code == 403


def test_a_body_that_is_not_json_by_its_type_is_refused(app: Any) -> None:
    body = json.dumps({"model": "prose", "prompt": "a"}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        reply = call(app, "/v1/completions", body, headers={"Content-Type": kind})
        assert _error(reply, 415)["code"] == "unsupported_media_type"
    ok = {"Content-Type": "application/json; charset=utf-8"}
    assert call(app, "/v1/completions", body, headers=ok).status_code == 200


def test_an_exposed_server_needs_a_key_and_a_blank_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="--allow-no-key"):
        check_exposure(ServeOptions(host="0.0.0.0"))
    for key in (" ", "", "\t"):
        with pytest.raises(ConfigError, match="blank"):
            check_exposure(ServeOptions(api_key=key))
    with pytest.raises(ConfigError, match="whitespace"):
        check_exposure(ServeOptions(api_key=" key"))
    check_exposure(ServeOptions(host="0.0.0.0", api_key="k"))


# -- hostile bodies ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"model": "prose", "prompt": "A", "\\ud800": 1}', "invalid_unicode"),
        (b'{"model": "prose", "prompt": "\\udfff"}', "invalid_unicode"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"model": "prose", "prompt": "a", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "too_deep"),
        (b'{"model": "prose", "prompt": "a", "max_tokens": ' + b"9" * 5000 + b"}", "invalid_json"),
        (b'{"model": "prose", "prompt": "\xff\xfe"}', "invalid_encoding"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_type"),
    ],
)
def test_hostile_bodies_are_a_400_in_the_apis_shape(app: Any, raw: bytes, code: str) -> None:
    for path in ("/v1/completions", "/v1/chat/completions"):
        error = _error(call(app, path, raw))
        assert error["code"] == code, error
        json.dumps(error).encode("utf-8")  # the message itself is valid text


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"stream": True, "stream_options": {"include_usage": "no"}},
            "stream_options.include_usage",
        ),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
        ({"stream_options": {"other": True}}, "stream_options.other"),
        ({"stream": "yes"}, "stream"),
        ({"n": True}, "n"),
        ({"seed": -1}, "seed"),
        ({"temperature": "0.5"}, "temperature"),
        ({"temperature": 1e999}, "temperature"),
        ({"prompt": [1, "a"]}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": [[1, 2], "a"]}, "prompt"),
        ({"prompt": [10**6]}, "prompt"),
        ({"prompt": [-1]}, "prompt"),
        ({"max_tokens": 2001}, "max_tokens"),
        ({"top_k": 10_000}, "top_k"),
        ({"best_of": 3}, "best_of"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_fields_name_their_param(app: Any, body: dict[str, Any], param: str) -> None:
    error = _error(call(app, "/v1/completions", {"model": "prose", "prompt": "a", **body}))
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def test_an_unknown_character_is_named_without_a_command_line_flag(app: Any) -> None:
    error = _error(call(app, "/v1/completions", {"model": "prose", "prompt": "a€b✓"}))
    assert "'€'" in error["message"] and "'✓'" in error["message"]
    assert "--" not in error["message"] and error["code"] == "unknown_characters"


def test_token_ids_out_of_range_say_what_ids_mean(app: Any, models: dict[str, Served]) -> None:
    size = len(models["prose"].vocab)
    error = _error(call(app, "/v1/completions", {"model": "prose", "prompt": [1, size]}))
    assert f"0 to {size - 1}" in error["message"] and "vocabulary" in error["message"]


def test_models_by_id(app: Any) -> None:
    reply = call(app, "/v1/models/prose", method="GET")
    assert reply.status_code == 200 and reply.json()["id"] == "prose"
    error = _error(call(app, "/v1/models/nope", method="GET"), 404)
    assert error["code"] == "model_not_found" and "prose" in error["message"]


# -- prompts -------------------------------------------------------------------------


def _complete(app: Any, **body: Any) -> dict[str, Any]:
    reply = call(app, "/v1/completions", {"model": "prose", **body})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_a_list_of_prompts_gives_n_choices_each_in_the_apis_order(app: Any) -> None:
    prompts = ["The cat", "A dog", "Then"]
    settings = {"max_tokens": 30, "seed": 7, "temperature": 1.0}
    got = _complete(app, prompt=prompts, n=2, **settings)
    texts = [c["text"] for c in sorted(got["choices"], key=lambda c: c["index"])]
    assert len(texts) == 6
    for p, prompt in enumerate(prompts):
        alone = _complete(app, prompt=prompt, n=2, **settings)["choices"]
        assert texts[2 * p : 2 * p + 2] == [c["text"] for c in alone], prompt
    assert got["usage"]["prompt_tokens"] == sum(map(len, prompts))
    assert got["usage"]["completion_tokens"] == 6 * 30


def test_token_ids_are_the_vocabularys_ids(app: Any, models: dict[str, Served]) -> None:
    vocab = models["prose"].vocab
    ids = [int(i) for i in vocab.encode("The cat")]
    settings = {"max_tokens": 20, "seed": 3}
    as_text = _complete(app, prompt="The cat", **settings)["choices"][0]["text"]
    assert _complete(app, prompt=ids, **settings)["choices"][0]["text"] == as_text
    many = _complete(app, prompt=[ids, ids[:3]], echo=True, **settings)["choices"]
    assert many[0]["text"] == "The cat" + as_text and many[1]["text"].startswith("The")


# -- chat ----------------------------------------------------------------------------


def test_the_default_chat_template() -> None:
    template = ChatTemplate()
    text = template.render([("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")])
    assert text == "System:\nBe brief.\n\nUser:\nHi\n\nAssistant:\nHello\n\nAssistant:\n"
    assert template.stop == "\n\n"


def test_a_chat_template_from_a_string_or_a_file(tmp_path: Path) -> None:
    line = ChatTemplate.parse("{Role}: {content}\\n")
    assert line.render([("user", "hi {x}")]) == "User: hi {x}\nAssistant: "
    assert line.stop == "\n"
    path = tmp_path / "template.txt"
    path.write_text("<{role}>{content}</{role}>", encoding="utf-8")
    tagged = ChatTemplate.parse(str(path))
    assert tagged.opening == "<assistant>" and tagged.stop == "</assistant>"
    for bad in (
        "{Role}: no content\\n",
        "{content}{content}\\n",
        "{who}: {content}\\n",
        "{content}",
    ):
        with pytest.raises(ConfigError):
            ChatTemplate.parse(bad)


def test_chat_replies_stop_at_the_turn_and_stream_in_the_apis_shape(app: Any) -> None:
    messages = [{"role": "user", "content": "The cat"}]
    body = {"model": "prose", "messages": messages, "max_tokens": 300, "seed": 5, "n": 2}
    whole = call(app, "/v1/chat/completions", body)
    assert whole.status_code == 200, whole.text
    reply = whole.json()
    assert reply["object"] == "chat.completion" and len(reply["choices"]) == 2
    for choice in reply["choices"]:
        assert choice["message"]["role"] == "assistant"
        assert "\n\n" not in choice["message"]["content"]
    streamed = events(call(app, "/v1/chat/completions", {**body, "stream": True,
                      "stream_options": {"include_usage": True}}))  # fmt: skip
    assert streamed[-1] == "[DONE]"
    chunks = streamed[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    for i in range(2):
        content = "".join(
            ch["delta"].get("content") or ""
            for c in chunks
            for ch in c["choices"]
            if ch["index"] == i
        )
        assert content == reply["choices"][i]["message"]["content"]
        finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["index"] == i]
        assert finishes[-1] == reply["choices"][i]["finish_reason"]
        assert finishes[-1] in ("stop", "length") and all(f is None for f in finishes[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == reply["usage"]


def test_chat_logprobs_join_to_the_reply(app: Any) -> None:
    body = {"model": "prose", "messages": [{"role": "user", "content": "the"}], "seed": 1,
            "max_tokens": 30, "logprobs": True, "top_logprobs": 2}  # fmt: skip
    choice = call(app, "/v1/chat/completions", body).json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(t["token"] for t in content) == choice["message"]["content"]
    for t in content:
        assert t["bytes"] == list(t["token"].encode()) and t["logprob"] <= 0
        assert len(t["top_logprobs"]) == 2


def test_a_chat_template_of_ones_own(models: dict[str, Served]) -> None:
    prose = models["prose"]
    lines = ChatTemplate.parse("{Role}: {content}\\n")
    served = {"prose": Served(prose.id, prose.model, prose.vocab, prose.engine, prose.docs,
                              chat=lines)}  # fmt: skip
    body = {"model": "prose", "messages": [{"role": "user", "content": "the cat"}], "n": 8,
            "max_tokens": 200, "seed": 4}  # fmt: skip
    reply = call(build_app(served), "/v1/chat/completions", body).json()
    finished = [c["finish_reason"] for c in reply["choices"]]
    assert all("\n" not in c["message"]["content"] for c in reply["choices"])
    assert "stop" in finished  # some reply ended its line before 200 characters


def test_an_items_run_answers_chat_with_one_item(app: Any) -> None:
    body = {"model": "names", "messages": [{"role": "user", "content": "s"}], "n": 4, "seed": 2}
    reply = call(app, "/v1/chat/completions", {**body, "max_tokens": 40}).json()
    for choice in reply["choices"]:
        content = choice["message"]["content"]
        assert content.startswith("s") and "\n" not in content


def test_chat_characters_outside_the_vocabulary(models: dict[str, Served], app: Any) -> None:
    asked = {"model": "prose", "messages": [{"role": "user", "content": "日本"}]}
    error = _error(call(app, "/v1/chat/completions", asked))
    assert error["param"] == "messages" and "'日'" in error["message"]
    prose = models["prose"]
    odd = {"prose": Served(prose.id, prose.model, prose.vocab, prose.engine, prose.docs,
                           chat=ChatTemplate("§{content}\n"))}  # fmt: skip
    asked = {"model": "prose", "messages": [{"role": "user", "content": "a"}]}
    error = _error(call(build_app(odd), "/v1/chat/completions", asked))
    assert "--chat-template" in error["message"]


# -- byte-level runs -----------------------------------------------------------------


def test_byte_level_logprobs_join_to_the_text_and_usage_counts_characters(app: Any) -> None:
    got = call(app, "/v1/completions", {"model": "bytes", "prompt": BYTES_TEXT * 2,
               "max_tokens": 40, "logprobs": 2, "echo": True, "temperature": 0.3,
               "seed": 1})  # fmt: skip
    assert got.status_code == 200, got.text
    choice = got.json()["choices"][0]
    tokens = choice["logprobs"]["tokens"]
    assert "".join(tokens) == choice["text"]
    assert tokens[:5] == list(BYTES_TEXT)  # é and 😀 one token each, not 2 and 4 bytes
    assert "é" in tokens[10:] or "😀" in tokens[10:]  # drawn ones grouped as well
    offsets = choice["logprobs"]["text_offset"]
    assert offsets == [sum(map(len, tokens[:i])) for i in range(len(tokens))]
    values = choice["logprobs"]["token_logprobs"]
    assert values[0] is None and all(v is not None and v <= 0 for v in values[1:])
    usage = got.json()["usage"]
    assert usage["prompt_tokens"] == len(BYTES_TEXT * 2)
    assert usage["completion_tokens"] == len(choice["text"]) - len(BYTES_TEXT * 2)


def test_tokens_group_a_characters_bytes_and_drop_what_a_stop_cut() -> None:
    def entry(ch: str, lp: float) -> tuple[str, float, dict[str, float]]:
        return (ch, lp, {})

    tokens = Tokens(byte_level=True)
    e = "é".encode()  # two bytes: decoded alone, each is U+FFFD
    first = tokens.take("a", [entry("a", -1.0), entry("\ufffd", -0.5)])  # é's first byte early
    assert first == [("a", -1.0, {})]
    second = tokens.take("é", [entry("\ufffd", -0.25)])
    assert second == [("é", -0.75, {})] and len(e) == 2
    # a byte that is not UTF-8 (U+FFFD, one byte) then ASCII: still one token each
    odd = tokens.take("\ufffdb", [entry("\ufffd", -2.0), entry("\ufffd", -1.0), entry("b", -3.0)])
    assert [t[0] for t in odd] == ["\ufffd", "b"] and odd[1][1] == -3.0
    assert odd[0][1] == -3.0  # the stray byte folded into the replacement's token
    cut = Tokens(byte_level=False)
    assert cut.take("x", [entry("x", -1.0), entry(".", -1.0)], final=True) == [("x", -1.0, {})]
    assert not cut.pending


def test_a_spliced_event_is_the_json_of_its_fields() -> None:
    """The renderers write an event's envelope once and splice each choice in; with
    quotes, backslashes, newlines and non-ASCII text it is still the event's JSON."""
    from types import SimpleNamespace

    from charrnn.serving.render import ChatRenderer, CompletionRenderer, Piece

    gen: Any = SimpleNamespace(logprobs=None, choices=2, n=2, echo=False, prompts=[],
                               opening="", served=SimpleNamespace(id='m"1'))  # fmt: skip
    text = 'a"b\\c\n\u2028é😀</script>'
    pieces = [Piece(0, text), Piece(1, "", finish_reason="stop")]
    event = CompletionRenderer(gen, "cmpl-1", 5).chunk(pieces)
    assert event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert json.loads(event[6:]) == {
        "id": "cmpl-1", "object": "text_completion", "created": 5, "model": 'm"1',
        "choices": [
            {"text": text, "index": 0, "logprobs": None, "finish_reason": None},
            {"text": "", "index": 1, "logprobs": None, "finish_reason": "stop"},
        ],
    }  # fmt: skip
    chat = ChatRenderer(gen, "chatcmpl-1", 5).chunk(pieces)
    first, second = (json.loads(part[6:]) for part in chat.split(b"\n\n") if part)
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"] == [
        {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
    ]
    assert second["choices"] == [
        {"index": 1, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]


# -- load ----------------------------------------------------------------------------


def _occupy(served: Served, count: int) -> list[Job]:
    jobs = [
        Job(np.array([1]), 1, 10**9, SampleSettings(), emit=lambda d: None) for _ in range(count)
    ]
    for job in jobs:
        assert served.engine.submit(job)
    return jobs


def test_a_full_queue_is_a_503_with_retry_after(runs: dict[str, Path]) -> None:
    models = load_served([runs["prose"]], ServeOptions(device="cpu", max_batch=1, max_queue=1))
    served = models["prose"]
    try:
        running = _occupy(served, 1)
        _wait(lambda: served.engine.load["active_rows"] == 1)
        waiting = _occupy(served, 1)
        reply = call(build_app(models, max_batch=1), "/v1/completions",
                     {"model": "prose", "prompt": "a"})  # fmt: skip
        error = _error(reply, 503)
        assert error["code"] == "busy" and reply.headers["retry-after"] == "1"
        for job in running + waiting:
            job.cancel()
        assert wait_idle(served.engine)
    finally:
        served.engine.close()


def _wait(condition: Any, seconds: float = 10.0) -> None:
    wait_until(condition, seconds)


def test_a_whole_request_whose_client_hangs_up_frees_its_rows(models: dict[str, Served]) -> None:
    """The client sends its body, waits, then closes (ASGI ``http.disconnect``): the
    request is cancelled and its 16 rows leave the batch within a poll or two, long
    before its million characters a row would end it."""
    engine = models["prose"].engine
    assert wait_idle(engine)
    app = build_app(models, limits=Limits(max_tokens=10**6))
    body = json.dumps({"model": "prose", "prompt": "a", "n": 16, "max_tokens": 10**6}).encode()
    seen: dict[str, float] = {}

    async def go() -> list[dict[str, Any]]:
        import time

        hang_up = asyncio.Event()
        sent: list[dict[str, Any]] = []
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": body, "more_body": False}
            await hang_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/completions", "raw_path": b"",
            "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")],
        }  # fmt: skip
        task = asyncio.create_task(app(scope, receive, send))
        while engine.load["active_rows"] < 16:
            await asyncio.sleep(0.005)
        hang_up.set()
        seen["gone"] = time.monotonic()
        while engine.load["active_rows"] > 0 and time.monotonic() < seen["gone"] + 10:
            await asyncio.sleep(0.005)
        seen["freed"] = time.monotonic()
        if engine.load["active_rows"]:
            task.cancel()
        await asyncio.wait_for(task, 5)
        return sent

    sent = asyncio.run(go())
    assert seen["freed"] - seen["gone"] < 2.0
    assert engine.load["steps"] > 0 and wait_idle(engine)
    assert not any(m.get("type") == "http.response.body" and b"choices" in m.get("body", b"")
                   for m in sent)  # fmt: skip


# -- the command ---------------------------------------------------------------------


def test_the_serve_command_passes_its_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import charrnn.serving.server as server
    from charrnn.cli.app import app as cli

    seen: list[ServeOptions] = []
    monkeypatch.setattr(server, "serve", lambda runs, options, ready=None: seen.append(options))
    args = ["serve", str(tmp_path), "--allow-host", "box.lan", "--allow-host", "pi.local",
            "--allow-origin", "http://localhost:3000", "--chat-template", "{Role}: {content}\\n",
            "--read-timeout", "2.5", "--max-connections", "50", "--max-prompt", "500"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    options = seen[0]
    assert options.allow_hosts == ("box.lan", "pi.local")
    assert options.allow_origins == ("http://localhost:3000",)
    assert ChatTemplate.parse(options.chat_template or "").stop == "\n"
    assert options.limits.read_timeout_s == 2.5 and options.max_connections == 50
    assert options.limits.max_prompt == 500
