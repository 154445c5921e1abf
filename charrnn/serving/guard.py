"""Who may reach the server, checked before any route runs.

A server on loopback is still open to every web page its user visits: a page can
post to it, and through DNS rebinding (a name of the attacker's that resolves to
127.0.0.1) read its answers. So, as local model servers do (Ollama's allowed
origins, llama.cpp's server):

- **Host**: only the names the server is bound to are accepted — ``localhost``,
  ``127.0.0.1``, ``[::1]`` and the ``--host`` address (any IP address when bound to
  ``0.0.0.0`` or ``::``: a rebinding attack needs a name) — plus ``--allow-host``
  names (``*``: any). Anything else is a 403.
- **Origin**: a browser's request from another origin than the server's own page is
  a 403 unless ``--allow-origin`` names that origin (``*``: any); an allowed one gets
  CORS headers (and its preflight an answer).
- **Content-Type**: a POST body must be ``application/json`` (a 415 otherwise), so a
  page cannot send one as a "simple" ``text/plain`` request without a preflight.
- **Size**: a body that declares more than the limit is a 413 before it is read.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from charrnn.serving.schemas import ApiError

log = logging.getLogger("uvicorn.error")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Access:
    """The hosts and origins the server answers (see the module's docstring)."""

    hosts: frozenset[str]
    any_ip: bool = False
    any_host: bool = False
    origins: frozenset[str] = frozenset()
    any_origin: bool = False

    @classmethod
    def bound_to(
        cls, host: str, allow_hosts: Iterable[str] = (), allow_origins: Iterable[str] = ()
    ) -> Access:
        """The access for a server listening on ``host``."""
        extra = {h.strip().lower().strip("[]") for h in allow_hosts if h.strip()}
        origins = {o.strip().rstrip("/").lower() for o in allow_origins if o.strip()}
        bound = host.lower().strip("[]")
        return cls(
            hosts=frozenset({*LOOPBACK_NAMES, bound, *extra} - {"*"}),
            any_ip=bound in ("0.0.0.0", "::", ""),
            any_host="*" in extra,
            origins=frozenset(origins - {"*"}),
            any_origin="*" in origins,
        )

    def host_allowed(self, header: str) -> bool:
        """Whether a ``Host`` header (``name[:port]``) names this server."""
        if self.any_host:
            return True
        name = _host_name(header)
        if name is None:
            return False
        if name in self.hosts:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        return False

    def origin_allowed(self, origin: str, host_header: str) -> bool:
        """Whether a browser at ``origin`` may use the server reached as ``host_header``:
        the server's own page always, others when allowed."""
        origin = origin.strip().rstrip("/").lower()
        parts = urlsplit(origin)
        if parts.scheme in ("http", "https") and parts.netloc == host_header.strip().lower():
            return True
        return self.any_origin or origin in self.origins


def _host_name(header: str) -> str | None:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``; None if malformed."""
    header = header.strip().lower()
    if not header:
        return None
    if header.startswith("["):
        end = header.find("]")
        return header[1:end] if end > 0 else None
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


class Guard:
    """ASGI middleware applying :class:`Access`, the JSON body rule and the size cap."""

    def __init__(self, app: ASGIApp, access: Access, max_body: int) -> None:
        self.access, self.max_body = access, max_body
        methods = ["GET", "POST", "OPTIONS"]
        headers = ["authorization", "content-type"]
        origins = ["*"] if access.any_origin else sorted(access.origins)
        self.app = CORSMiddleware(app, allow_origins=origins, allow_methods=methods,
                                  allow_headers=headers)  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            log.warning("%s %s refused: %s", scope["method"], scope["path"], refusal.message)
            await refusal.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> ApiError | None:
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers", []):
            headers.setdefault(key, value)
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.access.host_allowed(host):
            return ApiError(
                403, f"the Host {host[:100]!r} is not one this server answers to; start it "
                "with --allow-host NAME to allow it", code="host_not_allowed",
            )  # fmt: skip
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1")
            if not self.access.origin_allowed(text, host):
                return ApiError(
                    403, f"requests from the web page at {text[:100]!r} are refused; start "
                    "the server with --allow-origin ORIGIN to allow them",
                    code="origin_not_allowed",
                )  # fmt: skip
        if scope["method"] != "POST":
            return None
        kind = headers.get(b"content-type", b"").decode("latin-1")
        if kind.partition(";")[0].strip().lower() != "application/json":
            return ApiError(
                415, f"the body must be sent as Content-Type: application/json, not "
                f"{kind[:60] or 'none'!r}", code="unsupported_media_type",
            )  # fmt: skip
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                return ApiError(400, "Content-Length is not a number", code="invalid_length")
            if declared > self.max_body:
                return too_large(self.max_body)
        return None


def too_large(limit: int) -> ApiError:
    """The 413 for a body over ``limit`` bytes."""
    return ApiError(413, f"the request body is over {limit} bytes", code="too_large")
