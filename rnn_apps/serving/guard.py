"""HTTP guards of ``rnn-apps serve``: gzip request bodies, the Origin (CORS) and Host checks, deadlines for a
request to arrive, and connection limits that idle or slow sockets cannot exhaust."""

from __future__ import annotations

import ipaddress
import zlib
from typing import Callable, Optional, Sequence
from urllib.parse import urlsplit

from rnn_apps.limits import shown


class GuardError(Exception):
    """A request refused before it reaches a model (``status``: 400, 403, 413 or 415)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def check_encoding(encoding: Optional[str]) -> str:
    """``identity`` or ``gzip``, the request body's ``Content-Encoding`` (415 for any other)."""
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return "identity"
    if enc not in ("gzip", "x-gzip"):
        raise GuardError(415, f"Content-Encoding {encoding!r} is not supported (use gzip or none)")
    return "gzip"


def inflate(body: bytes, encoding: Optional[str], limit: int) -> bytes:
    """The request body decoded per its ``Content-Encoding`` (identity or gzip), at most ``limit`` bytes.

    The limit applies to the inflated size and inflation stops as soon as it is passed, so a small
    compressed "bomb" costs no more than ``limit`` bytes of memory.
    """
    if check_encoding(encoding) == "identity":
        return body
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


def check_request_host(host_header: Optional[str], target: str, protocol: str, loopback_bind: bool) -> None:
    """The ``Host`` checks of one request: present in HTTP/1.1 (RFC 9112 section 3.2), and on a loopback bind, a
    loopback name both in ``Host`` and in an absolute-form request target (``GET http://host/path``), whose
    authority a server takes instead of ``Host``.

    An HTTP/1.0 request without ``Host`` is let through: that version does not require it, and the check is
    against DNS rebinding by web pages, whose browsers always send ``Host``.

    Args:
        host_header: The ``Host`` header (None when absent; several are joined by ", ").
        target: The request target as received (``REQUEST_URI``): a path, or ``scheme://authority/path``.
        protocol: ``HTTP/1.0`` or ``HTTP/1.1`` (``SERVER_PROTOCOL``).
        loopback_bind: The server listens on loopback only.
    """
    if protocol == "HTTP/1.1" and not (host_header or "").strip():
        raise GuardError(400, "an HTTP/1.1 request must name the server in a Host header (RFC 9112)")
    if host_header and "," in host_header:
        raise GuardError(400, "a request must have one Host header (RFC 9112)")
    if target.startswith("/") or target == "*":
        check_host(host_header, loopback_bind)
        return
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise GuardError(400, f"request target {shown(target)!r} is neither a path nor an http URL")
    authority = parts.netloc.rpartition("@")[2]
    if loopback_bind and not is_loopback(_host_name(authority)):
        raise GuardError(403, f"request target's host {shown(authority)!r} refused: this server listens on "
                              f"loopback only (use localhost or 127.0.0.1)")


def guard_server(server, channel_class, idle_grace: float = 1.0, header_timeout: float = 10.0,
                 min_body_rate: float = 4096.0, refusal: Optional[Callable] = None) -> None:
    """Make a waitress server answer requests that arrive too slowly with 408, and evict the connections that
    hold a place longest without a request to run instead of refusing new ones at the limit; answer at once a
    request its headers refuse, though its client waits to be asked for the body, and one whose lines end with
    a bare LF.

    ``refusal(method, path, target, protocol, header, scheme)`` gives the status, message and headers of a
    request refused by its line and headers alone, or None (``header(name)``: a header's value or None). waitress tells
    a client that sent ``Expect: 100-continue`` to send its body as soon as the headers are in, even when it
    has refused the request already (a ``Content-Length`` over the limit), and reads the body it refused; the
    app sees a request only with its body. Here a request refused by its headers (by waitress or by
    ``refusal``) is answered instead, its body never asked for (RFC 9110, section 10.1.1), and the connection
    closed. A request whose header lines end with a bare LF, which waitress waits for forever (it looks for
    CRLF CRLF), is answered 400 at once.

    A request's line and headers must arrive within ``header_timeout`` seconds of its first byte, and its body
    within as long again after the headers, plus a second per ``min_body_rate`` bytes received (a client that
    trickles a byte now and then, "slowloris", never reaches the idle timeout). Past that the request is
    answered 408 (``{"error": ...}`` from ``channel_class``'s error task) and the connection closed. Blank
    lines between requests count as the start of the next one. While a request of the connection runs, the
    next one may be read already (``channel_request_lookahead``), but its clock is held back: each sweep
    restarts it, so the deadline counts from about when the connection's last running request ended. So too
    while the connection's answers are still being sent: waitress reads no more of a connection until its
    output has gone, so a request that a pipelining client sent in full may have arrived only in part. A
    client that never reads its answer is marked to close by waitress at ``channel_timeout`` (no request
    running and no byte sent or received for that long), or evicted at the connection limit (below), and
    reset here: waitress itself closes a marked connection only once its socket takes bytes again.

    The 408 is written on the event-loop thread with the channel's ``write_soon``, as waitress writes its own
    error answers, and only to a connection with no request running and no output pending: ``write_soon``
    waits while the output holds more than ``outbuf_high_watermark`` bytes, for this very thread to send them.

    waitress stops accepting at ``connection_limit`` open connections until idle ones time out
    (``channel_timeout``), so a client that opens that many sockets and sends nothing, or sends requests
    slowly, locks everyone out. Here, at the limit, connections with no request running are closed to make
    room, those that have held their place longest first, when they have held it for ``idle_grace`` seconds:
    a quiet connection since its last byte, one receiving a request since the request's first byte (less a
    second per ``min_body_rate`` bytes of body received, so a fast upload is not cut), one whose answers are
    still being sent since its client last read (or sent) a byte. One receiving a request is answered 408 as it
    is closed, unless output is pending: that connection is closed at once (an answer behind the unsent output
    would keep the place until its client reads, and this one has read nothing for ``idle_grace`` seconds).
    """
    import socket
    import struct
    import time

    from http import HTTPStatus

    from waitress.utilities import BadRequest, Error

    class RequestTimeout(Error):
        code = 408
        reason = "Request Timeout"

    class Refused(Error):
        worded = True  # the body is the whole message, as the app would answer it

        def __init__(self, code: int, body: str, headers: dict):
            super().__init__(body)
            self.code, self.reason, self.headers = code, HTTPStatus(code).phrase, headers

    base, base_channel = type(server), channel_class
    sweep_every = min(0.25, header_timeout / 4)
    state = {"next_sweep": 0.0}

    def received(self, data):
        """The waitress channel's ``received``, noting when each request starts arriving and its body begins."""
        now, before = time.time(), self.request
        in_request = before is not None and before.started is not None
        self.receiving = True  # send_continue may refuse the request now: received then queues its answer
        try:
            done = base_channel.received(self, data)
        finally:
            self.receiving = False
        req = self.request
        if req is not None and not req.headers_finished and bare_lf_ended(req.header_plus):
            with self.requests_lock:
                # as waitress queues a request it refused while parsing: its error task answers and closes
                req.error, req.completed = BadRequest(
                    "the request's header lines end with a bare LF; HTTP wants CRLF (RFC 9112, section 2.2)"), True
                self.request = None
                self.requests.append(req)
                if len(self.requests) == 1:
                    self.server.add_task(self)
            return done
        if req is not None:
            if req.started is None and (req.headers_finished or req.header_plus.strip()):
                req.started = now
            if req.headers_finished and req.body_since is None:
                req.body_since = now
        if in_request or data.strip(b" \t\r\n"):
            self.blank_since = None
        elif self.blank_since is None:  # blank lines, which waitress skips before a request
            self.blank_since = now
        return done

    def bare_lf_ended(header_plus: bytes) -> bool:
        """Whether the headers received so far hold a blank line ended by a bare LF (not CRLF CRLF)."""
        h = header_plus.lstrip(b"\r\n")
        return b"\n\n" in h or b"\n\r\n" in h

    def send_continue(self):
        """waitress's ``send_continue``, unless the request is refused by its line and headers: then it stays
        complete, to be answered by its error task (see above)."""
        req = self.request
        if req.error is None and refusal is not None and getattr(self, "receiving", False):
            path = "/" + req.path.lstrip("/") if req.path.startswith("/") else req.path  # as waitress's PATH_INFO
            found = refusal(req.command.upper(), path, req.request_uri, f"HTTP/{req.version}",
                            lambda name: req.headers.get(name.upper().replace("-", "_")), req.url_scheme)
            if found is not None:
                req.error = Refused(*found)
        if req.error is not None and getattr(self, "receiving", False):
            req.expect_continue, req.completed = False, True
            return
        base_channel.send_continue(self)

    def due(ch) -> Optional[float]:
        """When the request ``ch`` is receiving (or its blank lines) is late; None when it receives none."""
        req = ch.request
        if req is not None and req.body_since is not None:
            return req.body_since + header_timeout + req.body_bytes_received / min_body_rate
        if req is not None and req.started is not None:
            return req.started + header_timeout
        return None if ch.blank_since is None else ch.blank_since + header_timeout

    def held_since(ch) -> float:
        """Since when ``ch`` has held its place without a request to run (for eviction)."""
        if ch.total_outbufs_len:  # still being answered (its request's clock is held): since its last byte
            return ch.last_activity
        req = ch.request
        if req is not None and req.started is not None:
            return req.started + req.body_bytes_received / min_body_rate
        return ch.last_activity if ch.blank_since is None else ch.blank_since

    def abort(ch) -> None:
        """Close ``ch`` now with a reset, dropping what it has still to send. waitress closes a connection it has
        marked ``will_close`` (its idle timeout, an eviction here) in ``handle_write``, which runs only once the
        socket takes bytes again: never, while a client that reads nothing keeps its window shut. Shut for
        writing, the socket is reported writable at once, and there the send fails and waitress closes it."""
        ch.will_close = True
        try:
            ch.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed: reset
            ch.socket.shutdown(socket.SHUT_WR)
        except (OSError, AttributeError):  # closed already (socket None)
            pass

    def refuse(ch, message: str) -> None:
        """Answer the request ``ch`` is receiving with 408 and close the connection (the main thread, with no
        request of ``ch`` running: nothing else writes to it). Blank lines only: closed without an answer. Output
        pending (at the connection limit: an earlier answer its client has not read for ``idle_grace`` seconds):
        aborted, as an answer behind it would wait for the client, and hold the place meanwhile.

        With no output pending, ``write_soon`` appends the 408 at once: it waits only while the output holds
        more than ``outbuf_high_watermark`` bytes, which a 408 alone does not."""
        req, ch.request = ch.request, None
        if ch.total_outbufs_len or req is None or req.started is None:
            if req is not None:
                req.close()
            if ch.total_outbufs_len:
                abort(ch)
            else:
                ch.will_close = True
            return
        req.error, req.completed = RequestTimeout(message), True
        try:
            ch.error_task_class(ch, req).service()
        except Exception:  # noqa: BLE001 - no answer then (the client hung up: ClientDisconnected), but closed
            ch.will_close = True
            return
        finally:
            req.close()
        ch.close_when_flushed = True

    def open_channels(srv):
        """The connections that hold a place: not closing, or to close once answered (``Connection: close``, HTTP/1.0,
        a 408) while the answer is unsent, which a client that reads nothing keeps so."""
        return [ch for ch in list(srv.active_channels.values())
                if not ch.will_close and (not ch.close_when_flushed or ch.total_outbufs_len)]

    def sweep(srv, now: float) -> None:
        for ch in list(srv.active_channels.values()):
            # marked to close before this sweep (waitress's idle timeout, blank lines refused), yet still open: it
            # has been through a poll since, and its socket was not writable (its client reads nothing)
            if ch.will_close and not ch.requests:
                abort(ch)
        for ch in open_channels(srv):
            if due(ch) is None:
                continue
            with ch.requests_lock:
                req = ch.request
                # a request of this connection runs, or its answers are still being sent (waitress reads no more
                # of it meanwhile): the next request's clock is held back
                if ch.requests or ch.total_outbufs_len:
                    if req is not None and req.started is not None:
                        req.started = now
                        if req.body_since is not None:
                            req.body_since = now
                    if ch.blank_since is not None:
                        ch.blank_since = now
                elif now >= due(ch):
                    n = req.body_bytes_received if req is not None else 0
                    refuse(ch, f"the request body arrived too slowly: {n:,} byte{'' if n == 1 else 's'} in "
                               f"{now - req.body_since:.1f} s (the server waits {header_timeout:g} s, and 1 s more "
                               f"per {min_body_rate:,.0f} bytes received)"
                               if req is not None and req.body_since is not None else
                               f"the request's line and headers did not arrive within {header_timeout:g} s")

    def readable(self):
        now = time.time()
        if now >= state["next_sweep"]:
            state["next_sweep"] = now + sweep_every
            sweep(self, now)
        if self.accepting and len(self._map) >= self.adj.connection_limit:
            idle = []
            for ch in open_channels(self):
                if not ch.requests and now - held_since(ch) >= idle_grace:
                    idle.append(ch)
            idle.sort(key=held_since)
            excess = len(self._map) - self.adj.connection_limit + 1
            for ch in idle[:max(excess, len(idle) // 4)]:
                with ch.requests_lock:
                    if ch.requests:
                        continue
                    refuse(ch, "the request had not arrived when the server reached its connection limit, "
                               "and connections that held their place longest were closed to make room")
        return base.readable(self)

    server.__class__ = type("Guarded" + base.__name__, (base,), {"readable": readable})
    parser = type("Timed" + base_channel.parser_class.__name__, (base_channel.parser_class,),
                  {"started": None, "body_since": None})  # when its first byte came, and its body's
    server.channel_class = type("Guarded" + base_channel.__name__, (base_channel,),
                                {"received": received, "send_continue": send_continue, "parser_class": parser,
                                 "blank_since": None})
