"""``charrnn serve`` the way its users reach it: the ``openai`` client against a live
server on loopback (plain and streamed), the harness-style scoring request against
``charrnn score``, seeded requests against ``charrnn sample``, batching that changes
nothing, the API's error shapes, and a bounded load-and-fault run after which nothing
was lost and the server still answers. Every server binds 127.0.0.1 on a free port
and is stopped by its fixture.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_text, tiny_config

from charrnn.checkpoint import load_model
from charrnn.config import DataConfig
from charrnn.events import Silent
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.scoring.text import score_text
from charrnn.training.launch import train

httpx = pytest.importorskip("httpx", reason="the serve extra's test tools are not installed")
openai = pytest.importorskip("openai", reason="the openai client is not installed")
pytest.importorskip("uvicorn", reason="charrnn[serve] is not installed")

KEY = "test-key-0123456789"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve")
    cache = folder / "cache"
    text = folder / "text.txt"
    text.write_text(make_text(8000), encoding="utf-8")
    names = folder / "names.txt"
    words = make_text(4000, seed=3).replace(".", "").split()
    names.write_text("\n".join(dict.fromkeys(w.lower() for w in words)) + "\n", encoding="utf-8")
    stream_run, items_run = folder / "prose", folder / "names"
    train(tiny_config(text, steps=80), stream_run, reporter=Silent(), cache_dir=cache)
    items = tiny_config(names, steps=40, seq_len=24)
    items = type(items)(
        DataConfig(str(names), val_frac=0.2, docs="lines"), items.model, items.train
    )
    train(items, items_run, reporter=Silent(), cache_dir=cache)
    return {"prose": stream_run, "names": items_run, "text": text}


def _start(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "charrnn", "serve", *args, "--port", str(port)]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited: {process.stderr.read() if process.stderr else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("server did not start")


def _stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    return process.returncode


@pytest.fixture(scope="module")
def server(runs: dict[str, Path]) -> Iterator[str]:
    from charrnn.serving.server import free_port

    port = free_port()
    process = _start(
        [str(runs["prose"]), str(runs["names"]), "--api-key", KEY, "--max-tokens", "2000"], port
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        assert _stop(process) == 0


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=60)


def _post(
    url: str, body: object, key: str | None = KEY, path: str = "/v1/completions"
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}{path}", content=content, headers=headers, timeout=60)


def test_models_are_listed_with_their_facts(server: str) -> None:
    models = _client(server).models.list()
    ids = [m.id for m in models.data]
    assert ids == ["prose", "names"]
    raw = httpx.get(f"{server}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert raw["data"][0]["owned_by"] == "charrnn"
    assert (
        raw["data"][0]["charrnn"]["cell"] == "gru" and raw["data"][1]["charrnn"]["docs"] == "lines"
    )


def test_the_openai_client_completes_and_streams_the_same_seeded_text(server: str) -> None:
    client = _client(server)
    whole = client.completions.create(
        model="prose", prompt="The cat", max_tokens=60, temperature=0.9, seed=11
    )
    choice = whole.choices[0]
    assert len(choice.text) == 60 and choice.finish_reason == "length"
    assert whole.usage is not None
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (7, 60)
    chunks = list(
        client.completions.create(
            model="prose", prompt="The cat", max_tokens=60, temperature=0.9, seed=11, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert chunks[-1].choices[0].finish_reason == "length"


def test_the_stream_ends_with_done(server: str) -> None:
    """It streams: the first characters go at once, the rest at most every 20 ms."""
    body = {"model": "prose", "prompt": "a", "max_tokens": 2000, "stream": True}
    with httpx.stream(
        "POST", f"{server}/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as reply:
        events = [line for line in reply.iter_lines() if line]
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    assert len(events) >= 3  # text in two chunks or more, then [DONE]
    texts = [json.loads(e[6:])["choices"][0]["text"] for e in events[:-1]]
    assert sum(map(len, texts)) == 2000


@pytest.mark.parametrize(
    "settings", [{"temperature": 0.8}, {"temperature": 1.0, "top_k": 5}, {"top_p": 0.7}]
)
def test_a_seed_draws_what_charrnn_sample_draws(
    server: str, runs: dict[str, Path], settings: dict[str, float]
) -> None:
    model, vocab, _ = load_model(runs["prose"])
    expected = generate(
        model, vocab, length=80, prime="Then", seed=1234, settings=SampleSettings(**settings)
    )[0]
    ours = {"top_k": settings["top_k"]} if "top_k" in settings else {}  # our extension
    standard = {k: v for k, v in settings.items() if k != "top_k"}
    got = _client(server).completions.create(
        model="prose", prompt="Then", max_tokens=80, seed=1234, extra_body=ours, **standard
    )
    assert got.choices[0].text == expected


def test_a_request_gets_the_same_text_alone_and_among_31_others(server: str) -> None:
    body = {"model": "prose", "prompt": "The dog", "max_tokens": 150, "seed": 99, "temperature": 1}
    alone = _post(server, body).json()["choices"][0]["text"]
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        mine = body if i == 0 else {**body, "seed": 1000 + i, "prompt": "A"}
        results[i] = _post(server, mine).json()["choices"][0]["text"]

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 32
    assert results[0] == alone
    assert len(set(results.values())) > 20  # the others drew texts of their own


def test_echo_with_logprobs_scores_the_prompt_as_charrnn_score_does(
    server: str, runs: dict[str, Path]
) -> None:
    prompt = runs["text"].read_text(encoding="utf-8")[:500]
    got = _client(server).completions.create(
        model="prose", prompt=prompt, max_tokens=0, echo=True, logprobs=3
    )
    logprobs = got.choices[0].logprobs
    assert logprobs is not None and got.choices[0].text == prompt
    values = logprobs.token_logprobs
    assert values is not None and values[0] is None and len(values) == len(prompt)
    model, vocab, _ = load_model(runs["prose"])
    expected = score_text(model, vocab, prompt)
    mean = -sum(v for v in values[1:] if v is not None) / (len(prompt) - 1)
    assert math.isclose(mean, expected.nats, rel_tol=1e-5), (mean, expected.nats)
    assert logprobs.top_logprobs is not None and len(logprobs.top_logprobs[1]) == 3


def test_logprobs_of_drawn_characters(server: str) -> None:
    got = _post(server, {"model": "prose", "prompt": "a", "max_tokens": 10, "logprobs": 5})
    lp = got.json()["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == 10 and "".join(lp["tokens"]) == got.json()["choices"][0]["text"]
    assert all(v <= 0 for v in lp["token_logprobs"])
    assert all(len(top) == 5 for top in lp["top_logprobs"])
    assert lp["text_offset"] == list(range(10))


def test_stop_strings_end_the_text_before_them(server: str) -> None:
    client = _client(server)
    for seed in range(5):
        got = client.completions.create(
            model="prose", prompt="The", max_tokens=300, seed=seed, stop=[" ", "."]
        )
        choice = got.choices[0]
        assert " " not in choice.text and "." not in choice.text
        assert choice.finish_reason == "stop"


def test_an_items_run_returns_whole_items(server: str) -> None:
    got = _client(server).completions.create(model="names", prompt="", max_tokens=40, n=6, seed=1)
    assert len(got.choices) == 6
    for choice in got.choices:
        assert "\n" not in choice.text
        assert choice.finish_reason in ("stop", "length")
    assert sum(c.finish_reason == "stop" for c in got.choices) >= 4


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "prose", "prompt": "a", "temperature": NaN}', "temperature"),
        ({"model": "prose", "prompt": "a", "temperature": 2.5}, "temperature"),
        ({"model": "prose", "prompt": "a", "top_p": 0}, "top_p"),
        ({"model": "prose", "prompt": "a", "top_p": "high"}, "top_p"),
        ({"model": "prose", "prompt": "a", "max_tokens": 5000}, "max_tokens"),
        ({"model": "prose", "prompt": "a", "max_tokens": -1}, "max_tokens"),
        ({"model": "prose", "prompt": "a", "n": 0}, "n"),
        ({"model": "prose", "prompt": "€ unknown ✓"}, "prompt"),
        ({"model": "nope", "prompt": "a"}, "model"),
        ({"model": "prose", "prompt": 5}, "prompt"),
        ({"model": "prose", "prompt": "a", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "prose", "prompt": "a", "logprobs": 6}, "logprobs"),
        ({"model": "prose", "prompt": "a", "frequency_penalty": 1.0}, "frequency_penalty"),
    ],
)
def test_bad_values_are_a_400_in_the_apis_shape(server: str, body: object, param: str) -> None:
    reply = _post(server, body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_bad_json_is_a_400(server: str) -> None:
    reply = _post(server, b"{not json")
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "invalid_json"


def test_every_route_but_health_needs_the_key(server: str) -> None:
    assert httpx.get(f"{server}/health").status_code == 200
    for key in (None, "wrong-key"):
        reply = _post(server, {"model": "prose", "prompt": "a"}, key=key)
        assert reply.status_code == 401
        assert reply.json()["error"]["type"] == "authentication_error"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        assert httpx.get(f"{server}/v1/models", headers=headers).status_code == 401
    page = httpx.get(f"{server}/")
    assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(f"{server}/", auth=("", KEY)).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="bad", max_retries=0).models.list()


def test_an_oversized_body_is_a_413(server: str) -> None:
    big = {"model": "prose", "prompt": "a" * 2_000_000}
    reply = _post(server, big)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body grows past the cap
        yield b'{"model": "prose", "prompt": "'
        for _ in range(40):
            yield b"a" * 50_000
        yield b'"}'

    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    reply = httpx.post(f"{server}/v1/completions", content=chunks(), headers=headers, timeout=30)
    assert reply.status_code == 413


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_load_and_faults_lose_nothing_and_the_server_still_answers(
    runs: dict[str, Path],
) -> None:
    """64 streaming clients, 16 that hang up mid-stream, oversized bodies and bad values
    at once; then every well-formed request has its whole answer or a clean 503, the
    server answers /health with nothing left running, and its memory is where it was."""
    from charrnn.serving.server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start([str(runs["prose"]), "--max-queue", "48", "--max-tokens", "2000"], port)
    try:
        warm = {"model": "prose", "prompt": "a", "max_tokens": 200, "stream": True}
        for _ in range(2):  # warm up: the first batches allocate what later ones reuse
            ts = [threading.Thread(target=lambda: _stream_text(url, warm)) for _ in range(64)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
        before = _rss_kb(process.pid)
        outcomes: list[object] = []

        def good(i: int) -> None:
            body = {"model": "prose", "prompt": "The", "max_tokens": 200, "seed": i, "stream": True}
            outcomes.append(_stream_text(url, body))

        def hang_up(i: int) -> None:
            body = {"model": "prose", "prompt": "A", "max_tokens": 2000, "stream": True}
            with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as r:
                for n, _ in enumerate(r.iter_lines()):
                    if n > 5:
                        break  # leaves mid-stream

        def hostile(i: int) -> None:
            bad = [{"model": "prose", "prompt": "a", "temperature": -1}, b"\xff\xfe", b"[1, 2]"]
            for body in bad:
                assert _post(url, body, key=None).status_code == 400
            assert (
                _post(url, {"model": "prose", "prompt": "a" * 1_500_000}, key=None).status_code
                == 413
            )

        threads = [threading.Thread(target=good, args=(i,)) for i in range(64)]
        threads += [threading.Thread(target=hang_up, args=(i,)) for i in range(16)]
        threads += [threading.Thread(target=hostile, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(outcomes) == 64
        busy = [o for o in outcomes if o == 503]
        texts = [o for o in outcomes if isinstance(o, str)]
        assert len(busy) + len(texts) == 64
        assert all(len(t) == 200 for t in texts), [len(t) for t in texts]
        assert len(texts) >= 48  # the queue holds 48 beside the running batch
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            load = httpx.get(f"{url}/health").json()["models"]["prose"]
            if load["active_rows"] == 0 and load["waiting"] == 0:
                break
            time.sleep(0.05)
        assert load["active_rows"] == 0 and load["waiting"] == 0  # the hung-up rows left
        after = _rss_kb(process.pid)
        assert after <= before * 1.10, (before, after)
    finally:
        assert _stop(process) == 0


def _stream_text(url: str, body: dict[str, object]) -> str | int:
    """The streamed text, or the status code when the server refused."""
    text = []
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as reply:
        if reply.status_code != 200:
            assert reply.status_code == 503 and reply.headers["retry-after"]
            reply.read()
            assert reply.json()["error"]["code"] == "busy"
            return 503
        for line in reply.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                text += [c["text"] for c in json.loads(line[6:])["choices"]]
    return "".join(text)


@pytest.mark.slow
def test_sigterm_finishes_running_requests_and_exits_0(runs: dict[str, Path]) -> None:
    from charrnn.serving.server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = _start([str(runs["prose"])], port)
    result: list[str | int] = []
    body = {"model": "prose", "prompt": "a", "max_tokens": 1500, "stream": True}
    thread = threading.Thread(target=lambda: result.append(_stream_text(url, body)))
    thread.start()
    time.sleep(0.3)  # the stream is running
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    thread.join(30)
    assert result and isinstance(result[0], str) and len(result[0]) == 1500
