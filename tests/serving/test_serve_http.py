"""`rnn-apps serve` at the HTTP level: deadlines for a request to arrive (slowloris), eviction at the connection
limit, the Host checks and odd URLs. No model is run: the server serves a version it never loads, so no
TensorFlow is needed; deadlines are fractions of a second, waits generous (a loaded machine only makes the
tests slower)."""

import http.client
import json
import socket
import threading
import time
import urllib.request

import pytest

pytest.importorskip("flask")
pytest.importorskip("waitress")

from rnn_apps.serve import make_server  # noqa: E402


@pytest.fixture()
def serve(tmp_path):
    """Start a server with options over one model, ``sentiment``, whose version 1 is never loaded."""
    servers = []

    def run(**options):
        version = tmp_path / "models" / "sentiment" / "1"
        version.mkdir(parents=True, exist_ok=True)
        (version / "saved_model.pb").write_bytes(b"never loaded by these tests")
        servers.append(make_server(str(tmp_path / "models"), port=0, poll_seconds=0, warmup=False, **options))
        threading.Thread(target=servers[-1].serve_forever, daemon=True).start()
        return servers[-1]

    yield run
    for srv in servers:
        srv.shutdown()  # returns once its loop has stopped


def _connect(srv, timeout=10.0):
    return socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)


def _read_all(sock) -> bytes:
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
    except socket.timeout:
        return out + b"<no more within the timeout>"
    except ConnectionResetError:
        return out


def _parse(raw: bytes):
    """(status, headers, JSON body) of one raw response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else None
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, (json.loads(body) if body.strip() and status else body)


def exchange(srv, request: bytes):
    """Send one raw request (``Connection: close`` or HTTP/1.0) and read its answer."""
    with _connect(srv) as s:
        s.sendall(request)
        return _parse(_read_all(s))


def trickle(sock, pieces, every: float, limit: float = 10.0):
    """Send ``pieces`` one by one, ``every`` seconds apart (the last repeated), until the server answers or closes;
    returns (the answer, seconds from the first piece). Fails after ``limit`` seconds without an answer."""
    sock.settimeout(every)
    t0, i, out = time.monotonic(), 0, b""
    while time.monotonic() - t0 < limit:
        try:
            sock.sendall(pieces[min(i, len(pieces) - 1)])
        except (BrokenPipeError, ConnectionResetError):
            break
        i += 1
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        out += chunk
        if not chunk:
            break
        sock.settimeout(2.0)  # the rest of the answer
        return out + _read_all(sock), time.monotonic() - t0
    else:
        pytest.fail(f"no answer after {limit} s of a request sent slowly")
    return out, time.monotonic() - t0


HEAD = b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: localhost\r\n"


# --------------------------------------------------------------------------- deadlines and the connection limit


def test_headers_that_arrive_too_slowly_get_408(serve):
    srv = serve(header_timeout=0.5)
    with _connect(srv) as s:
        raw, seconds = trickle(s, [HEAD, b"X: y\r\n"], every=0.1)
    status, headers, body = _parse(raw)
    assert status == 408 and headers["content-type"] == "application/json", raw
    assert "headers did not arrive within 0.5 s" in body["error"], body
    assert 0.4 <= seconds < 8


def test_a_body_that_arrives_too_slowly_gets_408_and_is_counted(serve):
    srv = serve(header_timeout=0.5, min_body_rate=200)
    # a body arriving steadily takes longer than the header timeout, but is waited for: 1,500 bytes at ~2 KB/s
    with _connect(srv) as s:
        s.sendall(b"POST /v1/models/nosuch:predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                  b"Content-Length: 1500\r\n\r\n")
        for _ in range(15):
            time.sleep(0.05)
            s.sendall(b" " * 100)
        assert _parse(_read_all(s))[0] == 404
    # a byte now and then (here every 0.1 s), far below the rate, is not: answered at the header timeout
    with _connect(srv) as s:
        s.sendall(HEAD + b"Content-Length: 27\r\n\r\n")
        raw, seconds = trickle(s, [b"{"], every=0.1)
    status, _, body = _parse(raw)
    assert status == 408 and "body arrived too slowly" in body["error"], raw
    assert 0.4 <= seconds < 8
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/monitoring/prometheus/metrics", timeout=30)
    assert 'model_name="sentiment",API="predict",entrypoint="REST",status="408"} 1' in metrics.read().decode()


def test_blank_lines_sent_slowly_do_not_hold_a_connection(serve):
    srv = serve(header_timeout=0.5)
    with _connect(srv) as s:
        raw, seconds = trickle(s, [b"\r\n"], every=0.1)
    assert raw == b"" and 0.4 <= seconds < 8  # closed without an answer: there is no request to answer


def test_a_quiet_keep_alive_connection_outlives_the_header_timeout(serve):
    srv = serve(header_timeout=0.5, idle_timeout=60)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        socks = []
        for i in range(3):
            if i:
                time.sleep(1.2)  # quiet for longer than the header timeout, between requests
            conn.request("GET", "/v1/models/sentiment/versions/1")
            socks.append(conn.sock)  # http.client reconnects, with a new socket, when the server has closed
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["model_version_status"]
            assert r.getheader("Connection", "").lower() != "close"
        assert socks[0] is not None and socks.count(socks[0]) == 3  # the same connection throughout
    finally:
        conn.close()


def _big_answers(srv, size: int, pause: float = 0.0) -> bytes:
    """Make ``GET /big`` answer ``size`` bytes (after ``pause`` seconds); other paths go to the app."""
    app, big = srv._server.application, b"x" * size

    def application(environ, start_response):
        if environ["PATH_INFO"] != "/big":
            return app(environ, start_response)
        time.sleep(pause)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(big)))])
        return [big]

    srv._server.application = application
    return big


def _small_send_buffers(srv, size=64 * 1024):
    """Give the server's connections a small kernel send buffer (accepted sockets inherit the listener's), so
    that an answer of a MiB stays, unsent, in waitress's output while its client reads nothing."""
    srv._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def _hog(srv, request: bytes):
    """A connection that sends ``request`` and reads nothing, through a small window."""
    hog = socket.socket()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the answer stays unsent
    hog.settimeout(30)
    hog.connect(("127.0.0.1", srv.port))
    hog.sendall(request)
    return hog


def _responses(raw: bytes):
    """The (status, headers, body) of each of the pipelined responses in ``raw`` (each with a Content-Length)."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        status, headers, _ = _parse(head + sep)
        if status is None or not sep:
            out.append((None, {}, raw))  # not a response: what is left, as it is
            break
        n = int(headers.get("content-length", len(rest)))
        body = rest[:n]
        if headers.get("content-type") == "application/json":
            body = json.loads(body)
        out.append((status, headers, body))
        raw = rest[n:]
    return out


def test_a_late_request_behind_an_unread_answer_does_not_stall_the_server(serve):
    """A client pipelines part of a second request behind one with a large answer, and reads nothing: the server
    goes on serving others meanwhile, and the second request's clock starts only once the answer has been sent
    (waitress reads no more of the connection until then): its 408 follows the answer."""
    srv = serve(header_timeout=0.5, idle_timeout=60)
    # waitress's watermark is 16 MiB; 8 MiB is more than it (64 KiB here) and the kernel's send buffers hold,
    # so the answer stays in waitress's output: a 408 written with write_soon meanwhile would freeze the loop
    srv._server.adj.outbuf_high_watermark = 64 * 1024
    big = _big_answers(srv, 8 * 1024 * 1024, pause=0.3)  # the second request is read meanwhile
    with _hog(srv, b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n" + HEAD) as hog:  # the second, without its end
        time.sleep(1.5)  # the second request is late, but held back: the answer is still being sent
        t0 = time.monotonic()
        r = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/v1/models", timeout=10)
        assert r.status == 200 and time.monotonic() - t0 < 8
        raw = _read_all(hog)  # the answer, then (0.5 s later) the 408, then the connection is closed
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest[:len(big)] == big, raw[:300]
    status, _, body = _parse(rest[len(big):])
    assert status == 408 and "headers did not arrive within 0.5 s" in body["error"], rest[len(big):]


def test_pipelined_requests_behind_an_answer_read_late_are_not_timed_out(serve):
    """A client sends three requests at once, the first with a large answer that it reads only later. waitress
    reads no more of a connection while it has output to send, so the third, sent in full, has arrived only in
    part; its clock is held until the answer is sent: all three are answered (not a 408, nor a reset)."""
    srv = serve(header_timeout=0.5, idle_timeout=60, min_body_rate=1e6)  # the body adds no time to the deadline
    _small_send_buffers(srv)
    big = _big_answers(srv, 1024 * 1024, pause=0.2)  # the second request is read meanwhile, then reading stops
    body = b"{" + b" " * 30000 + b"}"  # more than waitress reads at once (recv_bytes, 8 KiB) twice
    with _hog(srv, b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\nGET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"
                   b"POST /v1/models/nosuch:predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body) as s:
        time.sleep(1.5)  # past the header timeout, the answer unread: the third request is still partly unread
        raw = _read_all(s)
    answers = _responses(raw)
    assert [a[0] for a in answers] == [200, 200, 404], [(a[0], str(a[2])[:200]) for a in answers]
    assert answers[0][2] == big and "models" in answers[1][2], answers[1]
    assert "nosuch" in answers[2][2]["error"], answers[2]


@pytest.mark.parametrize("after", [HEAD, b""], ids=["a request pipelined behind", "Connection: close"])
def test_a_client_that_reads_no_answer_cannot_hold_its_place_at_the_connection_limit(serve, after):
    """At the connection limit, connections whose answers their clients do not read (a request pipelined behind,
    in part, or none: the connection to close once answered) are closed to make room, not answered 408 behind the
    unsent answer (which keeps the place)."""
    srv = serve(max_connections=2, header_timeout=60, idle_timeout=60)
    _small_send_buffers(srv)
    _big_answers(srv, 1024 * 1024)
    close = b"" if after else b"Connection: close\r\n"
    hogs = [_hog(srv, b"GET /big HTTP/1.1\r\nHost: localhost\r\n" + close + b"\r\n" + after) for _ in range(2)]
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        r = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/v1/models", timeout=8)
        assert r.status == 200 and time.monotonic() - t0 < 6
        for hog in hogs[:1]:  # the first (held longest) closed with a reset: the answer cut off, no 408 after it
            raw = _read_all(hog)
            assert b"HTTP/1.1 408" not in raw and len(raw) < 1024 * 1024, raw[:300]
    finally:
        for hog in hogs:
            hog.close()


def test_max_connections_clients_keep_their_connections(serve):
    """--max-connections counts clients: waitress also counts its listening socket and wake-up pipe, and with
    its limit set to max_connections, 3 clients of 4 reached it and the guard closed a quiet one to make room
    (at the limit itself it does, for the client that may be waiting)."""
    srv = serve(max_connections=4, header_timeout=60, idle_timeout=60)
    quiet = [_connect(srv) for _ in range(2)]
    try:
        time.sleep(1.5)  # quiet for longer than the guard's grace: evicted, were the limit reached
        r = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/v1/models", timeout=8)  # the third client
        assert r.status == 200
        for s in quiet:  # each still connected, and answered
            s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            status, _, body = _parse(_read_all(s))
            assert status == 200 and "models" in body, body
    finally:
        for s in quiet:
            s.close()


def test_a_client_that_reads_no_answer_is_closed_at_the_idle_timeout(serve):
    """waitress marks such a connection to close at its idle timeout, but closes it only once its socket can take
    more bytes, which it never does: the guard resets it."""
    srv = serve(idle_timeout=1, header_timeout=60)
    _small_send_buffers(srv)
    _big_answers(srv, 1024 * 1024)
    channels = srv._server.active_channels
    with _hog(srv, b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n" + HEAD):  # its clock held: only idle
        t0 = time.monotonic()
        while not any(ch.total_outbufs_len for ch in list(channels.values())) and time.monotonic() - t0 < 5:
            time.sleep(0.01)
        assert any(ch.total_outbufs_len for ch in list(channels.values())), "the answer is written, and unsent"
        t0 = time.monotonic()
        while channels and time.monotonic() - t0 < 8:
            time.sleep(0.1)
        assert not channels and 0.5 <= time.monotonic() - t0 < 8


def test_a_body_over_the_limit_is_413_naming_the_limit(serve):
    srv = serve(max_body_bytes=1000)
    post = b"POST /v1/models/nosuch:predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    status, headers, body = exchange(srv, post + b"Content-Length: 1001\r\n\r\n" + b" " * 1001)
    assert status == 413 and headers["content-type"] == "application/json", body
    assert body["error"] == "request body of 1001 bytes exceeds the limit of 1000 bytes", body
    status, _, body = exchange(srv, post + b"Transfer-Encoding: chunked\r\n\r\n3E9\r\n" + b" " * 1001 + b"\r\n0\r\n\r\n")
    assert status == 413 and body["error"] == "the chunked request body exceeds the limit of 1000 bytes", body
    # a body of the limit itself is let through (to the app: there is no model "nosuch")
    assert exchange(srv, post + b"Content-Length: 1000\r\n\r\n" + b" " * 1000)[0] == 404


def test_slow_requests_cannot_lock_others_out_at_the_connection_limit(serve):
    srv = serve(max_connections=8, header_timeout=600, idle_timeout=600)
    slow = [_connect(srv) for _ in range(12)]
    stop, answers = threading.Event(), []

    def keep_sending():  # a header line every 0.2 s: never quiet for the 1 s after which idle ones are evicted
        for s in slow:
            s.setblocking(False)
        started = set()
        while not stop.wait(0.2):
            for s in slow:
                try:
                    s.send(b"X: y\r\n" if s in started else HEAD)
                    started.add(s)
                    answers.append(s.recv(65536))
                except (BlockingIOError, BrokenPipeError, ConnectionResetError, OSError):
                    pass

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        time.sleep(1.5)
        # without eviction of slow requests this waits for them all (600 s) and the urlopen timeout fails it
        r = urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/v1/models", timeout=15)
        assert r.status == 200
    finally:
        stop.set()
        sender.join(10)
        for s in slow:
            s.close()
    assert any(a.startswith(b"HTTP/1.0 408") and b"connection limit" in a for a in answers), answers


# --------------------------------------------------------------------------- Host, request target, URLs


def test_http11_needs_a_host_and_http10_may_omit_it(serve):
    srv = serve()
    for host in (b"", b"Host:\r\n", b"Host: \r\n"):
        status, _, body = exchange(srv, b"GET /v1/models HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
        assert status == 400 and "Host" in body["error"], (host, body)
    status, _, body = exchange(srv, b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n"
                                    b"Connection: close\r\n\r\n")
    assert status == 400 and "one Host" in body["error"], body
    # HTTP/1.0 does not require Host (browsers, whose requests the Host check is for, always send it)
    assert exchange(srv, b"GET /v1/models HTTP/1.0\r\n\r\n")[0] == 200


@pytest.mark.parametrize("target, status", [
    (b"http://evil.example/v1/models", 403),
    (b"http://evil.example:80/v1/models", 403),
    (b"http://localhost@evil.example/v1/models", 403),
    (b"HTTP://EVIL.EXAMPLE/v1/models", 403),
    (b"http://localhost/v1/models", 200),
    (b"http://127.0.0.1:8501/v1/models", 200),
    (b"http://[::1]/v1/models", 200),
])
def test_an_absolute_form_target_is_checked_as_the_host(serve, target, status):
    srv = serve()
    got, _, body = exchange(srv, b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert got == status, body
    if status == 403:
        assert "loopback" in body["error"], body


@pytest.mark.parametrize("path, words", [
    ("/v1/models/sentiment/versions/" + "9" * 5000, "Servable not found for request: Specific(sentiment, 999"),
    ("/v1/models/sentiment/versions/" + "9" * 5000 + "/metadata", "Servable not found"),
    ("/v1/models/sentiment/versions/" + "0" * 5000 + "1", None),  # version 1, zeros in front
    ("/v1/models/other/versions/" + "9" * 5000, "Could not find any versions of model other"),
    ("/v1/models/sentiment/versions/" + "0" * 5000, "Malformed version"),
], ids=["status", "metadata", "leading-zeros", "unknown-model", "zeros"])
def test_a_version_of_thousands_of_digits_is_a_plain_404(serve, path, words):
    srv = serve()
    status, _, body = exchange(srv, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    if words is None:
        assert status == 200 and body["model_version_status"][0]["version"] == "1", body
    else:
        assert status == 404 and words in body["error"] and len(body["error"]) < 300, body


@pytest.mark.parametrize("path", ["/v1/models//metadata", "/v1/models//versions/1", "/v1/models/sentiment//metadata",
                                  "/v1/models//sentiment:predict"])
def test_an_empty_path_segment_is_a_json_404_not_a_redirect(serve, path):
    srv = serve()
    status, headers, body = exchange(srv, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                                          .encode())
    assert status == 404 and headers["content-type"] == "application/json", (status, headers, body)
    assert "Malformed request" in body["error"], body


# --------------------------------------------------------------------------- Expect: 100-continue, bare LF, OPTIONS


@pytest.mark.parametrize("request_head, status, words", [
    (HEAD + b"Content-Length: 20000000\r\n", 413, "request body of 20000000 bytes exceeds the limit of 16777216 bytes"),
    (HEAD + b"Content-Length: 3000\r\nContent-Encoding: br\r\n", 415, "Content-Encoding 'br' is not supported"),
    (HEAD + b"Content-Length: 3000\r\nOrigin: http://evil.example\r\n", 403,
     "cross-origin request from http://evil.example refused"),
    (b"POST /v1/models/sentiment/metadata HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\n", 405,
     "Method POST not allowed for /v1/models/sentiment/metadata (use GET, HEAD)"),
    (b"POST /v1/models/a/b/c:predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\n", 404,
     "Malformed request: POST /v1/models/a/b/c:predict"),
    (b"POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\n", 404, "Not Found: The requested URL"),
    # the route before the encoding, in the app's words, as the app answers the same request with its body
    (b"POST /v1/models/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3000\r\nContent-Encoding: br\r\n", 404,
     "Malformed request: POST /v1/models/"),
])
def test_a_request_its_headers_refuse_is_answered_before_its_body_is_asked_for(serve, request_head, status, words):
    """A client sending `Expect: 100-continue` (curl does, for bodies over 1 MB) was told "100 Continue" and sent
    the whole body even when the server would refuse the request from its headers alone (RFC 9110, 10.1.1)."""
    srv = serve()
    with _connect(srv, timeout=5) as s:
        s.sendall(request_head + b"Expect: 100-continue\r\n\r\n")
        raw = _read_all(s)  # the server answers and closes without a byte of body
    got, headers, body = _parse(raw)
    assert got == status and b"100 Continue" not in raw, raw
    assert body["error"].startswith(words) and "Not Found: Not Found" not in body["error"], body
    if status == 405:
        assert headers["allow"] == "GET, HEAD"
    # a request its headers do not refuse is still asked for its body, and answered as before (the model's
    # name is looked up only then)
    with _connect(srv, timeout=5) as s:
        s.sendall(b"POST /v1/models/nosuch:predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"{}")
        status, _, body = _parse(_read_all(s))
        assert status == 404 and "nosuch" in body["error"], body


def test_header_lines_ending_with_a_bare_lf_get_400_at_once(serve):
    """waitress looks for CRLF CRLF only: a request with bare LF line ends waited for the header timeout, then 408."""
    srv = serve(header_timeout=30)
    t0 = time.monotonic()
    status, _, body = exchange(srv, b"GET /v1/models/sentiment HTTP/1.1\nHost: localhost\nConnection: close\n\n")
    assert status == 400 and "bare LF" in body["error"], body
    assert time.monotonic() - t0 < 10
    assert exchange(srv, b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")[0] == 200


def test_options_is_a_cors_preflight_only_where_cross_origin_calls_are_allowed(serve):
    """OPTIONS was answered 204, offering GET, POST and OPTIONS, on every path, unknown ones too, and counted as a
    model API request; TF Serving takes no OPTIONS, and a preflight is for --cors-origin."""
    plain, cors = serve(), serve(cors_origins=["https://app.example"])

    def options(srv, path, origin=None):
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        conn.request("OPTIONS", path, headers={"Origin": origin} if origin else {})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r.status, r.getheader("Allow"), json.loads(body) if body.strip() else None

    status, allow, body = options(plain, "/v1/models/sentiment:predict")
    assert (status, allow) == (405, "POST") and "see --cors-origin" in body["error"], body
    assert options(plain, "/v1/models/sentiment")[:2] == (405, "GET, HEAD")
    assert options(plain, "/nowhere")[0] == 404
    assert options(cors, "/v1/models/sentiment:predict", "https://app.example")[0] == 204
    assert options(cors, "/nowhere", "https://app.example")[0] == 404
    assert options(cors, "/v1/models/a/b/c", "https://app.example")[0] == 404
