"""``charrnn serve`` as a process on loopback, with the clients people run and the
sockets a hostile hand sends: the ``openai`` client (completions and chat, plain and
streamed, ``models.retrieve``), LangChain's ``OpenAI`` (invoke, stream, batch) and
``ChatOpenAI`` (invoke, stream), litellm's ``completion`` and ``text_completion``;
half-sent headers and bodies closed within the read timeout; bad bodies and hung-up
uploads logged in one line each, never a traceback; SIGTERM during streams; a port
in use and a blank key refused at start.

One server process is shared by the module (its log goes to a file the tests read);
the tests of starting and stopping run their own. Every test here starts or uses a
process that imports torch, so all are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_text, tiny_config

from charrnn.events import Silent
from charrnn.training.launch import train

httpx = pytest.importorskip("httpx", reason="the serve extra's test tools are not installed")
openai = pytest.importorskip("openai", reason="the openai client is not installed")
pytest.importorskip("uvicorn", reason="charrnn[serve] is not installed")

pytestmark = pytest.mark.slow

KEY = "test-key-0123456789"
READ_TIMEOUT_S = 1.0
DIALOGUE = "User:\nthe cat sat\n\nAssistant:\nand the dog ran far away.\n\n" * 20


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("serve-clients")
    text = folder / "text.txt"
    text.write_text(make_text(8000) + "\n\n" + DIALOGUE, encoding="utf-8")
    train(tiny_config(text, steps=60), folder / "prose", reporter=Silent(), cache_dir=folder / "c")
    return folder / "prose"


class Server:
    """A ``charrnn serve`` process on a free loopback port, its log in a file."""

    def __init__(self, args: list[str], log: Path) -> None:
        from charrnn.serving.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "charrnn", "serve", *args, "--port", str(self.port)]
        with log.open("w") as sink:
            self.process = subprocess.Popen(command, stderr=sink, stdout=sink)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.process.kill()
        raise AssertionError("the server did not start")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode


@pytest.fixture(scope="module")
def server(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    args = [str(run), "--api-key", KEY, "--read-timeout", str(READ_TIMEOUT_S)]
    live = Server([*args, "--max-tokens", "100000"], log)
    try:
        yield live
    finally:
        assert live.stop() == 0
        assert "Traceback" not in log.read_text(), log.read_text()


def _openai(server: Server) -> Any:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)


# -- the clients ---------------------------------------------------------------------


def test_the_openai_client_completes_chats_and_streams(server: Server) -> None:
    client = _openai(server)
    assert client.models.retrieve("prose").id == "prose"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    messages = [{"role": "user", "content": "the cat"}]
    chat = client.chat.completions.create(
        model="prose", messages=messages, max_tokens=60, seed=4, n=2
    )
    assert len(chat.choices) == 2 and chat.choices[0].message.role == "assistant"
    reply = chat.choices[0].message.content
    assert reply is not None and "\n\n" not in reply
    assert chat.usage is not None and chat.usage.completion_tokens == sum(
        len(c.message.content or "") for c in chat.choices
    )
    stream = client.chat.completions.create(
        model="prose", messages=messages, max_tokens=60, seed=4, n=2, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    first = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and
                    c.choices[0].index == 0)  # fmt: skip
    assert first == reply
    assert chunks[-1].usage is not None and chunks[-1].usage == chat.usage
    whole = client.completions.create(model="prose", prompt="The cat", max_tokens=40, seed=2)
    parts = client.completions.create(
        model="prose", prompt="The cat", max_tokens=40, seed=2, stream=True
    )
    assert "".join(c.choices[0].text for c in parts if c.choices) == whole.choices[0].text


def test_langchain_openai_and_chatopenai(server: Server) -> None:
    lc = pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    base = f"{server.url}/v1"
    llm = lc.OpenAI(model="prose", base_url=base, api_key=KEY, max_tokens=20, max_retries=0,
                    seed=3, temperature=1.0)  # fmt: skip
    text = llm.invoke("The cat")
    assert isinstance(text, str) and len(text) == 20
    assert "".join(llm.stream("The cat")) == text
    prompts = ["The cat", "A dog", "Then"]
    batch = llm.batch(prompts)
    assert len(batch) == 3 and batch[0] == text and all(len(t) == 20 for t in batch)
    generated = llm.generate(prompts)
    assert [g[0].text for g in generated.generations] == batch
    chat = lc.ChatOpenAI(model="prose", base_url=base, api_key=KEY, max_tokens=30, seed=3,
                         max_retries=0)  # fmt: skip
    answer = chat.invoke("the cat")
    assert isinstance(answer.content, str) and 0 < len(answer.content) <= 30
    assert "".join(str(m.content) for m in chat.stream("the cat")) == answer.content


def test_litellm_completion_and_text_completion(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price map download
    litellm = pytest.importorskip("litellm", reason="litellm is not installed")
    base = f"{server.url}/v1"
    messages = [{"role": "user", "content": "the cat"}]
    chat = litellm.completion(
        model="openai/prose", api_base=base, api_key=KEY, messages=messages, max_tokens=20,
        seed=8,
    )  # fmt: skip
    content = chat.choices[0].message.content
    assert isinstance(content, str) and len(content) <= 20
    text = litellm.text_completion(
        model="openai/prose", api_base=base, api_key=KEY, prompt="The cat", max_tokens=20, seed=8
    )
    assert len(text.choices[0].text) == 20


# -- sockets -------------------------------------------------------------------------


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent first."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, got
        if not data:
            return True, got
        got += data
    return False, got


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def test_half_sent_headers_and_bodies_are_closed_within_the_read_timeout(server: Server) -> None:
    slow_headers = [_connect(server) for _ in range(20)]
    for sock in slow_headers:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
    silent = _connect(server)  # connects and says nothing
    slow_body = _connect(server)
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100\r\n\r\n{"
    )
    slow_body.sendall(head.encode())
    bound = READ_TIMEOUT_S + 3
    for sock in [*slow_headers, silent]:
        closed, _ = _closed_within(sock, bound)
        assert closed
        sock.close()
    closed, reply = _closed_within(slow_body, bound)
    slow_body.close()
    assert closed and reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"code": "timeout"' in reply
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_bad_bodies_get_the_apis_400_and_one_log_line_each(server: Server) -> None:
    bodies = [
        b'{"model": "prose", "prompt": "A", "\\ud800": 1}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"model": "prose", "prompt": "a", "max_tokens": ' + b"7" * 5000 + b"}",
        b'{"model": "prose", "prompt": "\xc3\x28"}',
        b'{"model": "prose", "prompt": "a", "stream": true, "stream_options": '
        b'{"include_usage": "no"}}',
    ]
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    before = server.log.read_text().count("\n")
    for body in bodies:
        reply = httpx.post(f"{server.url}/v1/completions", content=body, headers=headers)
        assert reply.status_code == 400, reply.text
        assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
    refused = [
        ({**headers, "Content-Type": "text/plain"}, 415),
        ({**headers, "Host": "attacker.example"}, 403),
        ({**headers, "Origin": "http://attacker.example"}, 403),
    ]
    for sent, status in refused:
        reply = httpx.post(f"{server.url}/v1/completions", content=b"{}", headers=sent)
        assert reply.status_code == status and "error" in reply.json()
    time.sleep(0.2)
    lines = server.log.read_text().splitlines()[before:]
    assert len(lines) == len(bodies) + len(refused), lines
    assert not any("Traceback" in line for line in lines)
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_a_client_that_hangs_up_while_sending_its_body_logs_no_traceback(
    server: Server,
) -> None:
    for _ in range(3):
        sock = _connect(server)
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n" + '{"model": "prose", "messages": ['
        )
        sock.sendall(head.encode())
        time.sleep(0.1)
        sock.close()
    time.sleep(0.5)
    log = server.log.read_text()
    assert "Traceback" not in log and "ClientDisconnect" not in log
    assert httpx.get(f"{server.url}/health").status_code == 200


# -- starting and stopping -----------------------------------------------------------


def _stream_events(url: str, body: dict[str, Any], out: list[Any], path: str) -> None:
    """Every event of one stream into ``out``, then the time it ended."""
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.stream("POST", f"{url}{path}", json=body, headers=headers, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    out.append(line[6:])
    except httpx.HTTPError as exc:
        out.append(f"broken: {exc!r}")
    out.append(time.monotonic())


def test_sigterm_during_streams_ends_each_with_done_in_time(run: Path, tmp_path: Path) -> None:
    """Six streams far from their end when SIGTERM comes: each ends with an error event
    and ``[DONE]``, the process exits 0 within the promised 10 s, the log is clean."""
    live = Server([str(run), "--api-key", KEY, "--max-tokens", "1000000"], tmp_path / "log")
    streams: list[list[Any]] = [[] for _ in range(6)]
    threads = []
    for i, out in enumerate(streams):
        path = "/v1/chat/completions" if i % 2 else "/v1/completions"
        body: dict[str, Any] = {"model": "prose", "max_tokens": 1_000_000, "stream": True}
        if i % 2:
            body["messages"] = [{"role": "user", "content": "the"}]  # may end at its turn
        else:
            body["prompt"] = "The"
        threads.append(threading.Thread(target=_stream_events, args=(live.url, body, out, path)))
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while not all(len(out) > 2 for out in streams) and time.monotonic() < deadline:
        time.sleep(0.05)
    signalled = time.monotonic()
    live.process.send_signal(signal.SIGTERM)
    assert live.process.wait(timeout=15) == 0
    exited = time.monotonic()
    for thread in threads:
        thread.join(15)
    assert exited - signalled <= 10.5, exited - signalled
    for out in streams:
        *data, ended = out
        assert ended - signalled <= 10.5
        assert data[-1] == "[DONE]", data[-3:]
        last = json.loads(data[-2])
        assert "error" in last or last["choices"][0].get("finish_reason"), last
    log = (tmp_path / "log").read_text()
    assert "Traceback" not in log and "CancelledError" not in log, log


def _refused_at_start(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHARRNN_API_KEY"}
    command = [sys.executable, "-m", "charrnn", "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_a_port_in_use_and_a_blank_key_are_one_line_and_exit_1(run: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _refused_at_start([str(run), "--port", str(port)])
    assert done.returncode == 1, done.stderr
    assert "in use" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    done = _refused_at_start([str(run), "--api-key", " "])
    assert done.returncode == 1 and "blank" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
