"""Downloads against a local HTTP server on 127.0.0.1 — no test reaches the internet."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from charrnn.data import catalog as corpora
from charrnn.data.catalog import Download, download_path, get_download, is_downloaded
from charrnn.data.download import extract_member, fetch
from charrnn.errors import CorpusError

CONTENT = b"To be, or not to be, that is the question.\n" * 2000


class Server:
    """Serves CONTENT at /file; /cut sends half, then hangs up; /zip a zip of it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once = True
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as z:
            z.writestr("inner", CONTENT)
        self.zipped = buffer.getvalue()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.zipped if self.path == "/zip" else CONTENT
                start = 0
                if self.headers.get("Range") and self.path != "/norange":
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path == "/cut" and server.cut_once:
                    server.cut_once = False
                    self.wfile.write(body[start : start + len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Server]]:
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    # Polled every 50 ms, not 0.5 s: shutdown waits for the poll, at every test's end.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    finally:
        httpd.shutdown()
        httpd.server_close()


SHA = hashlib.sha256(CONTENT).hexdigest()


def test_good_file(tmp_path: Path, server: tuple[str, Server]) -> None:
    url, _ = server
    seen: list[int] = []
    dest = fetch(
        f"{url}/file",
        tmp_path / "f.txt",
        size=len(CONTENT),
        sha256=SHA,
        progress=lambda done, total: seen.append(done),
    )
    assert dest.read_bytes() == CONTENT
    assert seen[-1] == len(CONTENT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]


def test_wrong_checksum_leaves_nothing(tmp_path: Path, server: tuple[str, Server]) -> None:
    url, _ = server
    with pytest.raises(CorpusError, match="SHA-256 does not match"):
        fetch(f"{url}/file", tmp_path / "f.txt", size=len(CONTENT), sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_leaves_nothing(tmp_path: Path, server: tuple[str, Server]) -> None:
    url, _ = server
    with pytest.raises(CorpusError, match="failed its check"):
        fetch(f"{url}/file", tmp_path / "f.txt", size=len(CONTENT) - 5, sha256=None)
    assert list(tmp_path.iterdir()) == []


def test_a_download_stops_at_the_expected_size(tmp_path: Path, server: tuple[str, Server]) -> None:
    # Before: a server (or anyone on a plain-http path) could stream far more than the
    # expected size into the part file.
    url, _ = server
    with pytest.raises(CorpusError, match="sent more than the expected 1,000 bytes"):
        fetch(f"{url}/file", tmp_path / "f.txt", size=1000, sha256=None)
    assert list(tmp_path.iterdir()) == []


def test_a_zip_member_larger_than_expected_is_never_unpacked(tmp_path: Path) -> None:
    # Before: a small zip whose member claims gigabytes was extracted in full before the
    # size check.
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("inner", b"\0" * 5_000_000)  # deflates to a few KB
    assert archive.stat().st_size < 50_000
    with pytest.raises(CorpusError, match="claims 5,000,000 bytes, not the expected 100"):
        extract_member(archive, "inner", tmp_path / "inner", size=100, sha256=None)
    assert not (tmp_path / "inner").exists() and not archive.exists()


def test_truncated_transfer_is_kept_and_resumed(tmp_path: Path, server: tuple[str, Server]) -> None:
    url, state = server
    dest = tmp_path / "f.txt"
    with pytest.raises(CorpusError, match=r"broke off .* run the same command again"):
        fetch(f"{url}/cut", dest, size=len(CONTENT), sha256=SHA)
    assert not dest.exists(), "a partial file must never take the final name"
    part = tmp_path / "f.txt.part"
    assert 0 < part.stat().st_size < len(CONTENT)
    fetch(f"{url}/cut", dest, size=len(CONTENT), sha256=SHA)
    assert dest.read_bytes() == CONTENT
    assert state.requests[-1] == ("/cut", f"bytes={len(CONTENT) // 2}-")


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path, server: tuple[str, Server]) -> None:
    url, _ = server
    (tmp_path / "f.txt.part").write_bytes(b"garbage that is not the start")
    fetch(f"{url}/norange", tmp_path / "f.txt", size=len(CONTENT), sha256=SHA)
    assert (tmp_path / "f.txt").read_bytes() == CONTENT


def test_server_down_says_how_to_place_the_file(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = Download(
        "demo", f"http://127.0.0.1:{port}/file", size=len(CONTENT), sha256=SHA, description="test"
    )
    with pytest.raises(CorpusError) as info:
        get_download(entry, tmp_path)
    message = str(info.value)
    assert "cannot download" in message and "without network access" in message
    assert str(download_path(entry, tmp_path)) in message and SHA in message
    # placing the file by hand works
    download_path(entry, tmp_path).write_bytes(CONTENT)
    assert get_download(entry, tmp_path).read_bytes() == CONTENT
    assert is_downloaded(entry, tmp_path)


def test_registry_entry_with_zip(tmp_path: Path, server: tuple[str, Server]) -> None:
    url, state = server
    entry = Download(
        "zipped",
        f"{url}/zip",
        size=len(CONTENT),
        sha256=None,
        member="inner",
        archive_size=len(state.zipped),
        description="test",
    )
    path = get_download(entry, tmp_path)
    assert path.read_bytes() == CONTENT and path.name == "inner"
    assert sorted(p.name for p in path.parent.iterdir()) == ["inner"]  # zip removed
    get_download(entry, tmp_path)  # verified copy reused: no second request
    assert len(state.requests) == 1


def test_a_damaged_file_in_place_is_reported(tmp_path: Path) -> None:
    entry = Download(
        "demo", "http://127.0.0.1:9/x", size=len(CONTENT), sha256=SHA, description="test"
    )
    dest = download_path(entry, tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(CONTENT[:-1] + b"?")
    with pytest.raises(CorpusError, match=r"SHA-256 does not match.*remove it"):
        get_download(entry, tmp_path)


def test_corpus_list_never_calls_a_damaged_copy_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a file of the right size that failed its SHA-256 showed "downloaded".
    entry = Download(
        "demo", "http://127.0.0.1:9/x", size=len(CONTENT), sha256=SHA, description="test"
    )
    monkeypatch.setattr(corpora, "DOWNLOADS", {"demo": entry})
    dest = download_path(entry, tmp_path)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(CONTENT[:-1] + b"?")
    (row,) = [r for r in corpora.list_corpora(tmp_path) if r.name == "demo"]
    assert row.status.startswith("damaged (its SHA-256 does not match") and str(dest) in row.status
    dest.write_bytes(CONTENT)
    (row,) = [r for r in corpora.list_corpora(tmp_path) if r.name == "demo"]
    assert row.status.startswith("downloaded;")


def test_a_hand_placed_zip_that_fails_its_check_says_to_remove_it(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inner", CONTENT[:-1] + b"?")
    with pytest.raises(CorpusError, match=rf"failed its check: .*; remove {archive}"):
        extract_member(archive, "inner", tmp_path / "inner", size=len(CONTENT), sha256=SHA)
    assert not (tmp_path / "inner").exists()
