"""HTTP guards of ``rnn-apps serve``: gzip request bodies, the Origin (CORS) and Host checks, and
connection limits that idle sockets cannot exhaust."""

from __future__ import annotations

import ipaddress
import zlib
from typing import Optional, Sequence


class GuardError(Exception):
    """A request refused before it reaches a model (``status``: 403, 413 or 415)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def inflate(body: bytes, encoding: Optional[str], limit: int) -> bytes:
    """The request body decoded per its ``Content-Encoding`` (identity or gzip), at most ``limit`` bytes.

    The limit applies to the inflated size and inflation stops as soon as it is passed, so a small
    compressed "bomb" costs no more than ``limit`` bytes of memory.
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip"):
        raise GuardError(415, f"Content-Encoding {encoding!r} is not supported (use gzip or none)")
    # A gzip stream may hold several members, one after the other (as `gzip -c a b` writes, and `gzip -d`
    # reads); each is inflated in turn, within what is left of the limit. Bytes that are no member are refused.
    parts, total, rest = [], 0, body
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(rest, limit - total + 1)
        except zlib.error as e:
            raise GuardError(400, f"the gzip request body is corrupt: {e}") from None
        total += len(out)
        if total > limit or d.unconsumed_tail:
            raise GuardError(413, f"the request body inflates to more than the limit of {limit} bytes")
        if not d.eof:
            raise GuardError(400, "the gzip request body is truncated")
        parts.append(out)
        rest = d.unused_data
        if not rest:
            return b"".join(parts)


def is_loopback(host: str) -> bool:
    """Whether a bind address is loopback only (127.0.0.0/8, ::1, localhost)."""
    h = host.strip("[]").lower().rstrip(".")  # host names are case-insensitive; "localhost." is absolute
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    h = host_header.strip()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def check_host(host_header: Optional[str], loopback_bind: bool) -> None:
    """On a loopback bind, refuse a Host that is not loopback (DNS rebinding: a web page whose name
    resolves to 127.0.0.1 must not reach the server)."""
    if not loopback_bind or not host_header:
        return
    if not is_loopback(_host_name(host_header)):
        raise GuardError(403, f"Host {host_header!r} refused: this server listens on loopback only "
                              f"(use localhost or 127.0.0.1)")


def origin_allowed(origin: str, host_header: Optional[str], scheme: str, allowed: Sequence[str]) -> bool:
    """Whether a browser request from ``origin`` may run: same origin, or listed by ``--cors-origin``."""
    if host_header and origin == f"{scheme}://{host_header}":
        return True
    return "*" in allowed or origin in allowed


def cors_headers(origin: str, allowed: Sequence[str]) -> dict:
    if not allowed:
        return {}
    return {"Access-Control-Allow-Origin": "*" if "*" in allowed else origin, "Vary": "Origin"}


def preflight_headers(origin: str, allowed: Sequence[str]) -> dict:
    return {**cors_headers(origin, allowed),
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, Content-Encoding",
            "Access-Control-Max-Age": "600"}


def guard_server(server, channel_class, idle_grace: float = 1.0) -> None:
    """Make a waitress server evict its idlest connections instead of refusing new ones at the limit.

    waitress stops accepting at ``connection_limit`` open connections until idle ones time out
    (``channel_timeout``), so a client that opens that many sockets and sends nothing locks everyone
    out. Here, at the limit, connections with no request in progress that have been quiet for
    ``idle_grace`` seconds are closed, oldest first, to make room.
    """
    import time

    base = type(server)

    def readable(self):
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            now = time.time()
            idle = [ch for ch in self.active_channels.values()
                    if not ch.requests and not ch.will_close and now - ch.last_activity >= idle_grace]
            idle.sort(key=lambda ch: ch.last_activity)
            excess = len(self._map) - self.adj.connection_limit + 1
            for ch in idle[:max(excess, len(idle) // 4)]:
                ch.will_close = True
        return base.readable(self)

    server.__class__ = type("Guarded" + base.__name__, (base,), {"readable": readable})
    server.channel_class = channel_class
