"""The running server of ``rnn-apps serve``: waitress, the model poller, start and stop."""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from typing import Callable, Optional, Sequence

from rnn_apps.serving.registry import ModelRegistry
from rnn_apps.serving.routes import count_request, create_app

log = logging.getLogger("rnn_apps.serve")


def _json_error_channel(count: Callable[[str, int, float], None], max_body_bytes: int):
    """A waitress channel whose own errors (413 over the body limit, bad headers) are JSON too.

    Args:
        count: Called with the request's path, the status and the seconds taken, to count the request as the
            app counts those it answers (these never reach the app).
        max_body_bytes: The largest request body, named in the 413 (waitress is given one byte more, so that a
            body of exactly the limit is read, and its own message would name that).
    """
    from waitress.channel import HTTPChannel
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self):
            e = self.request.error
            # an app's refusal (guard_server's refusal) is worded whole, as the app words it
            message = e.body if getattr(e, "worded", False) else e.reason + (f": {e.body}" if e.body else "")
            if e.code == 413:
                n = self.request.content_length
                message = (f"request body of {n} bytes exceeds the limit of {max_body_bytes} bytes" if n > 0 else
                           f"the chunked request body exceeds the limit of {max_body_bytes} bytes")
            body = json.dumps({"error": message}).encode("utf-8") + b"\n"
            self.status = f"{e.code} {e.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.response_headers.extend(getattr(e, "headers", {}).items())  # a 405's Allow
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)
            count(getattr(self.request, "path", "") or "", e.code, time.time() - self.start_time)

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    return JsonErrorChannel


class ModelServer:
    """A running (bound) server; ``serve_forever`` in one thread, ``shutdown`` from another."""

    def __init__(self, models_dir: str, host: str = "127.0.0.1", port: int = 8501,
                 max_body_bytes: int = 16 * 1024 * 1024, poll_seconds: float = 2.0, threads: int = 16,
                 *, cors_origins: Sequence[str] = (), max_connections: int = 100, idle_timeout: int = 30,
                 header_timeout: float = 10.0, min_body_rate: float = 4096.0, warmup: bool = True, **scheduling):
        import waitress
        from waitress.server import BaseWSGIServer

        from rnn_apps.serving.batching import Scheduler, SchedulerConfig
        from rnn_apps.serving.guard import guard_server, is_loopback
        from rnn_apps.serving.metrics import Metrics

        self.registry = ModelRegistry(models_dir, background=poll_seconds > 0, warmup=warmup)
        self.registry.scan()
        self.poll_seconds = poll_seconds
        self.metrics = Metrics()
        self.scheduler = Scheduler(SchedulerConfig(**scheduling), on_batch=self.metrics.batch)
        self.app = create_app(self.registry, max_body_bytes, rescan_on_request=poll_seconds <= 0,
                              scheduler=self.scheduler, metrics=self.metrics, cors_origins=cors_origins,
                              loopback=is_loopback(host))
        try:
            self._server = waitress.create_server(
                self.app, host=host, port=port, threads=threads,
                # waitress refuses a body of its limit or more; the limit itself is allowed (the app checks it too)
                max_request_body_size=max_body_bytes + 1, ident="rnn-apps-serve",
                expose_tracebacks=False, clear_untrusted_proxy_headers=True,
                # idle sockets are closed after idle_timeout s, and evicted at once when the limit is reached
                connection_limit=max_connections, channel_timeout=idle_timeout,
                channel_request_lookahead=1,  # lets a request see that its client hung up (deadline checks)
                cleanup_interval=max(1, min(idle_timeout // 2, 10)),
            )
        except (OSError, ValueError) as e:  # waitress: ValueError for a host it cannot resolve
            why = getattr(e, "strerror", None) or str(e)
            busy = getattr(e, "errno", None) == errno.EADDRINUSE
            raise ServeError(f"cannot listen on {host}:{port}: {why}"
                             + (" (another program uses this port; choose another with --port)" if busy else "")
                             ) from None
        self._map = getattr(self._server, "_map", None) or getattr(self._server, "map")
        channel = _json_error_channel(
            lambda path, status, seconds: count_request(self.metrics, self.registry, path, status, seconds),
            max_body_bytes)
        own = len(self._map)  # waitress's listening sockets and wake-up pipe: no client connected yet
        for d in list(self._map.values()):
            if isinstance(d, BaseWSGIServer):
                # waitress counts its own sockets in connection_limit: max_connections would admit 2 fewer clients
                d.adj.connection_limit = max_connections + own
                guard_server(d, channel, header_timeout=header_timeout, min_body_rate=min_body_rate,
                             refusal=self.app.config["rnn_apps.refusal"])
        port_ = getattr(self._server, "effective_port", None)
        if port_ is None:  # MultiSocketServer (a host name resolving to several addresses)
            port_ = self._server.effective_listen[0][1]
        self.host = host
        self.port = int(port_)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._poller: Optional[threading.Thread] = None
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def _poll(self) -> None:
        first = True
        while first or not self._stop.wait(self.poll_seconds):
            first = False
            try:
                self.registry.scan()
                self.registry.load_newest()
            except Exception:  # noqa: BLE001 - the poller must survive anything
                log.exception("model directory poll failed")

    def serve_forever(self) -> None:
        from waitress import wasyncore

        if self._closed:
            raise RuntimeError("server is shut down")
        self._stopped.clear()
        if self.poll_seconds > 0 and self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="serve-poller", daemon=True)
            self._poller.start()
        adj = self._server.adj
        try:
            while not self._stop.is_set() and self._map:
                wasyncore.loop(timeout=min(adj.asyncore_loop_timeout, 0.5), map=self._map,
                               use_poll=adj.asyncore_use_poll, count=1)
        finally:
            self._close()
            self._stopped.set()

    def _close(self) -> None:
        from waitress import wasyncore

        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:
            self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        finally:
            wasyncore.close_all(self._map)

    def shutdown(self) -> None:
        """Stop serving; returns once the listening socket is closed."""
        self._stop.set()
        pull = getattr(self._server, "pull_trigger", None)
        if pull is not None:
            try:
                pull()
            except OSError:
                pass
        if not self._stopped.wait(10):
            log.warning("server loop did not stop in time")
        self._close()
        if self._poller is not None:
            self._poller.join(timeout=self.poll_seconds + 5)


def set_tensorflow_threads(intra_op: int = 0, inter_op: int = 0) -> None:
    """Size TensorFlow's thread pools for this process, as TF Serving's ``--tensorflow_intra_op_parallelism``
    and ``--tensorflow_inter_op_parallelism`` do.

    ``intra_op`` threads share the work of one operation (a matrix product), ``inter_op`` threads run
    independent operations at once; 0 leaves TensorFlow's choice (one per core). A product split over
    threads waits for its share on a core busy with other work, but one thread per operation also gives up
    the second core to a lone request: on the shipped poem model the default served more poems per second
    (docs/serve.md, Threads).

    Raises:
        ServeError: a count is negative, or TensorFlow has already run something in this process with other
            counts (they can be set only before it starts).
    """
    for name, n in (("intra_op", intra_op), ("inter_op", inter_op)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ServeError(f"{name} threads must be a whole number >= 0 (0: TensorFlow's choice); received {n!r}.")
    if not intra_op and not inter_op:
        return
    from rnn_apps.quiet import import_tensorflow_quietly

    threading_ = import_tensorflow_quietly(init_devices=False).config.threading  # the XLA cache on, as usual
    wanted = {"intra-op": (intra_op, threading_.get_intra_op_parallelism_threads,
                           threading_.set_intra_op_parallelism_threads),
              "inter-op": (inter_op, threading_.get_inter_op_parallelism_threads,
                           threading_.set_inter_op_parallelism_threads)}
    for name, (n, get, put) in wanted.items():
        if n and get() != n:
            try:
                put(n)
            except RuntimeError:
                raise ServeError(f"cannot use {n} {name} thread(s): TensorFlow already runs in this process with "
                                 f"{get() or 'its default of one per core'}; the thread counts must be set before "
                                 "TensorFlow starts.") from None


def make_server(models_dir: str, host: str = "127.0.0.1", port: int = 8501,
                max_body_bytes: int = 16 * 1024 * 1024, poll_seconds: float = 2.0,
                threads: int = 16, intra_op_threads: int = 0, inter_op_threads: int = 0,
                **options) -> ModelServer:
    """Bind a server for every SavedModel under ``models_dir`` (``port=0``: any free port).

    ``models_dir`` holds models (``<name>/<version>/saved_model.pb``), or the versions of one model, which is
    then served alone under the directory's name (:class:`rnn_apps.serving.registry.ModelRegistry`).

    The server is listening on return (``.port`` is the bound port); call ``serve_forever()``
    to answer requests and ``shutdown()`` from another thread to stop.

    Args:
        intra_op_threads, inter_op_threads: TensorFlow's thread pools (:func:`set_tensorflow_threads`; 0: its
            choice). They must be set before TensorFlow runs anything in the process.
        options: ``cors_origins``, ``max_connections``, ``idle_timeout`` (s), ``header_timeout`` (s: a request's
            line and headers must arrive within it, and its body within as long again plus 1 s per
            ``min_body_rate`` bytes, else 408; :func:`rnn_apps.serving.guard.guard_server`), ``warmup`` (bool), and the
            scheduling settings of :class:`rnn_apps.serving.batching.SchedulerConfig`
            (``enable_batching``, ``max_batch_size``, ``batch_timeout``, ``request_timeout``,
            ``heavy_slots``, ``heavy_queue``, ``light_rows``, ``light_bytes``).

    Raises:
        ServeError: ``models_dir`` is missing or is one model's version (:func:`check_models_dir`), the port is
            taken, the host cannot be bound, the port is out of range, or the thread counts cannot be set.
    """
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServeError(f"port must be an integer from 0 to 65535; received {port!r}.")
    check_models_dir(models_dir)
    set_tensorflow_threads(intra_op_threads, inter_op_threads)
    return ModelServer(models_dir, host, port, max_body_bytes, poll_seconds, threads, **options)


class ServeError(ValueError):
    """The server cannot start (the message says why)."""


def check_models_dir(models_dir: str) -> None:
    """Refuse (:class:`ServeError`) a ``models_dir`` that is not a directory, or that is one version of a model
    (it holds ``saved_model.pb``): the server would otherwise answer 404 to every request."""
    if not isinstance(models_dir, (str, os.PathLike)) or not os.path.isdir(models_dir):
        raise ServeError(f"models directory not found: {models_dir}")
    if os.path.isfile(os.path.join(models_dir, "saved_model.pb")):
        version = os.path.abspath(models_dir)
        model = os.path.dirname(version)
        raise ServeError(f"{version} is one version of a model (it holds saved_model.pb), not a models directory: "
                         f"pass the directory of the models, {os.path.dirname(model)}, or that of this model's "
                         f"versions, {model}.")


def run_server(models_dir: str, host: str = "127.0.0.1", port: int = 8501,
               max_body_bytes: int = 16 * 1024 * 1024, poll_seconds: float = 2.0, **options) -> None:
    """Serve until Ctrl-C, printing where (``options``: as :func:`make_server`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = make_server(models_dir, host, port, max_body_bytes, poll_seconds, **options)
    registry = server.registry
    names = registry.names()
    if registry.one_model:
        print(f"{os.path.join(registry.models_dir, registry.one_model)} holds the versions of one model: serving it "
              f"as model {registry.one_model}, alone (to serve every model beside it, pass --models "
              f"{registry.models_dir}).")
    else:
        print(f"Serving {len(names)} model(s) from {registry.models_dir}"
              f"{': ' + ', '.join(names) if names else ' (new ones are picked up as they appear)'}")
    print(f"TF Serving REST API at {server.url}v1/models/<name>, try-it page at {server.url}, "
          f"metrics at {server.url}monitoring/prometheus/metrics")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"Warning: listening on {host} without authentication: anyone who can reach this "
              f"port can run the models.")
    print("Press Ctrl-C to stop.", flush=True)
    # TensorFlow's native start-up lines (CUDA probes, absl notices) would follow the banner from the
    # loading thread; imported here, before that thread starts, they are kept off the server's log.
    from rnn_apps.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        print("Stopped.")
