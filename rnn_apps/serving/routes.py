"""The Flask app of ``rnn-apps serve``: TF Serving's REST routes, the page, metrics and the HTTP guards."""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Optional, Sequence, Tuple

from rnn_apps.serving.checks import is_large
from rnn_apps.serving.codec import json_default, loads
from rnn_apps.serving.errors import ApiError, bad_request, shown
from rnn_apps.serving.predict import run_signature, predict
from rnn_apps.serving.registry import VERSION_DIR, LoadedModel, ModelRegistry, Signature

log = logging.getLogger("rnn_apps.serve")

_ROUTE = re.compile(
    r"^(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$"
)


_MODEL_API = "/v1/models/"
_POSTED = (":predict", ":classify", ":regress")  # the model API's verbs that take a request body
_APIS = {"": "status", "/metadata": "metadata"}  # the others by their verb: predict, classify, regress


def _allow(e):
    """The ``Allow`` header of a werkzeug HTTP error (a 405 has one)."""
    return [(k, v) for k, v in e.get_headers() if k.lower() == "allow"]


def metric_labels(path: str) -> Optional[Tuple[str, str]]:
    """(model name, API) of a request to the model API, as the request count labels it; None for another path.

    A path that names no API of TF Serving's (``/v1/models/poetry/foo``) is counted with both labels empty.
    """
    if not path or not path.startswith(_MODEL_API):
        return None
    m = _ROUTE.match(path[len(_MODEL_API):])
    if not m:
        return "", ""
    suffix = m.group("suffix") or ""
    return m.group("name"), _APIS.get(suffix, suffix[1:])


def count_request(metrics, registry: ModelRegistry, path: str, status: int, seconds: float) -> None:
    """Count an answered request to the model API (``path``) with its HTTP status; other paths are not counted."""
    labels = metric_labels(path)
    if labels is None:
        return
    name, api = labels
    if name not in registry.names():  # a label per made-up name would grow without bound
        name = ""
    metrics.request(name, api, status, seconds)


def _unsupported_method(model: LoadedModel, method: str) -> str:
    """Why ``:classify`` or ``:regress`` (``method``) is refused, and how to reach the model's signature of that
    method through ``:predict`` instead: TF Serving's classify and regress APIs feed serialized tf.Example protos
    to the signature, which ``:predict`` takes as base64 strings."""
    method_name = f"tensorflow/serving/{method}"
    names = sorted(k for k, s in model.signatures.items() if s.method_name == method_name)
    if not names:
        return (f"{method} is not supported by this server; use :predict (model {shown(model.name)} version "
                f"{model.version} has no signature with method_name {method_name}; its signatures: "
                f"{', '.join(sorted(model.signatures)) or 'none'})")
    sig = model.signatures[names[0]]
    features = model.limits.example_texts if model.limits is not None else {}  # the feature a model reads
    inputs = []
    for name, spec in sig.inputs.items():
        if spec.dtype.name == "string":
            feature = f" with a string feature \"{features[name]}\"" if name in features else ""
            inputs.append(f"\"{name}\" takes serialized tf.Example protos{feature}, each as {{\"b64\": \"...\"}}")
        else:
            inputs.append(f"\"{name}\" takes {spec.dtype.name} values")
    example = (f", e.g. {{\"signature_name\": \"{sig.name}\", \"instances\": [{{\"b64\": \"...\"}}]}}"
               if len(sig.inputs) == 1 and sig.inputs[next(iter(sig.inputs))].dtype.name == "string" else "")
    others = f" (others of that method: {', '.join(names[1:])})" if len(names) > 1 else ""
    outputs = ", ".join(sorted(sig.outputs))
    return (f"{method} is not supported by this server; use :predict with \"signature_name\": \"{sig.name}\", "
            f"the signature with method_name {method_name}{others}. Its input {'; input '.join(inputs)}"
            f"{example}. The answer is :predict's (its outputs {outputs}), not {method}'s \"results\".")


def create_app(registry: ModelRegistry, max_body_bytes: int = 16 * 1024 * 1024,
               rescan_on_request: bool = False, *, scheduler=None, metrics=None,
               cors_origins: Sequence[str] = (), loopback: bool = False):
    """The Flask WSGI app answering TF Serving's REST API from ``registry``.

    Args:
        registry: The models.
        max_body_bytes: The largest request body, after gzip inflation (413 above).
        rescan_on_request: Rescan the models directory on every request (no poller).
        scheduler: Runs the model calls (:class:`rnn_apps.serving.batching.Scheduler`; default one with
            the default settings).
        metrics: Where request counts and latencies go (:class:`rnn_apps.serving.metrics.Metrics`).
        cors_origins: Web origins (``https://app.example``, or ``*``) whose pages may call the API; a
            browser request from any other origin is refused with 403.
        loopback: The server listens on loopback only: requests must name a loopback Host.
    """
    from importlib import resources

    from flask import Flask, Response, g, request
    from werkzeug.exceptions import HTTPException
    from werkzeug.routing import RequestRedirect

    from rnn_apps.serving import guard
    from rnn_apps.serving.batching import Deadline, ScheduleError, Scheduler, SchedulerConfig
    from rnn_apps.serving.metrics import Metrics

    scheduler = scheduler or Scheduler(SchedulerConfig())
    metrics = metrics or Metrics()
    cors_origins = tuple(cors_origins)
    index_html = resources.files("rnn_apps.serving").joinpath("index.html").read_text(encoding="utf-8")
    app = Flask("rnn_apps.serve")
    app.config["rnn_apps.metrics"] = metrics
    app.url_map.merge_slashes = False  # /v1/models//metadata is a 404, not a redirect to another URL

    def reply(obj, status: int = 200, headers: Optional[dict] = None):
        body = json.dumps(obj, ensure_ascii=False, indent=1, default=json_default, allow_nan=True)
        # a lone surrogate becomes its JSON escape (\ud800) instead of failing to encode
        resp = Response((body + "\n").encode("utf-8", "backslashreplace"), status=status,
                        mimetype="application/json")
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.errorhandler(ApiError)
    def _api_error(e: ApiError):
        return reply({"error": e.message}, e.status, e.headers)

    @app.errorhandler(guard.GuardError)
    def _guard_error(e: guard.GuardError):
        return reply({"error": e.message}, e.status)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        headers = dict(_allow(e))
        if e.code == 404 and request.path.startswith(_MODEL_API):  # /v1/models//metadata: no name
            return reply({"error": f"Malformed request: {request.method} {shown(request.path)}"}, 404)
        return reply({"error": f"{e.name}: {e.description}"}, e.code or 500, headers)

    @app.errorhandler(Exception)
    def _internal(e: Exception):
        log.exception("internal error")
        return reply({"error": f"Internal error: {type(e).__name__}: {e}"}, 500)

    def check_origin(host: Optional[str], target: str, protocol: str, origin: Optional[str], scheme: str) -> None:
        guard.check_request_host(host, target, protocol, loopback)
        if origin and not guard.origin_allowed(origin, host, scheme, cors_origins):
            raise guard.GuardError(403, f"cross-origin request from {origin} refused (the server allows "
                                        f"{', '.join(cors_origins) or 'no other origin'}; see --cors-origin)")

    def check_length(length: Optional[int]) -> None:
        if length is not None and length > max_body_bytes:
            raise ApiError(413, f"request body of {length} bytes exceeds the limit of {max_body_bytes} bytes")

    def refusal(method: str, path: str, target: str, protocol: str, header, scheme: str
                ) -> Optional[Tuple[int, str, dict]]:
        """The status, message and headers a request gets from its line and headers alone, or None when its body
        is needed.

        The server asks before it tells a client that sent ``Expect: 100-continue`` to send the body, so a
        request it will refuse anyway is answered at once, its body never sent (RFC 9110, section 10.1.1).
        ``header(name)`` gives a header's value (None when absent). The model's name is not looked up here.
        """
        try:
            check_origin(header("Host"), target, protocol, header("Origin"), scheme)
            if method == "OPTIONS":
                return None
            length = header("Content-Length")
            check_length(int(length) if length is not None and length.isdigit() else None)
            try:  # in the app's order: the route, then (reading the body) the encoding
                app.url_map.bind("localhost").match(path, method)
            except RequestRedirect:
                return None  # answered by the app, as any request
            except HTTPException as e:
                if e.code == 404 and path.startswith(_MODEL_API):  # as _http_error words it
                    return 404, f"Malformed request: {method} {shown(path)}", {}
                return e.code or 404, f"{e.name}: {e.description}", dict(_allow(e))
            if path.startswith(_MODEL_API):
                model_api(method, path)
            guard.check_encoding(header("Content-Encoding"))
        except ApiError as e:
            return e.status, e.message, dict(e.headers or {})
        except guard.GuardError as e:
            return e.status, e.message, {}
        return None

    app.config["rnn_apps.refusal"] = refusal

    @app.before_request
    def _checks():
        g.t0 = time.perf_counter()  # first: a request the guards refuse is counted too (after_request)
        origin = request.headers.get("Origin")
        check_origin(request.headers.get("Host"), request.environ.get("REQUEST_URI") or request.path,
                     request.environ.get("SERVER_PROTOCOL", ""), origin, request.scheme)
        if request.method == "OPTIONS":
            # A CORS preflight, answered only with --cors-origin and for a path the server has; otherwise
            # OPTIONS is a method like any other that the path does not take (TF Serving takes none).
            if request.routing_exception is not None:
                raise request.routing_exception
            allow = model_api("OPTIONS", request.path, False)[1] if request.path.startswith(_MODEL_API) else "GET, HEAD"
            if not cors_origins:
                raise ApiError(405, f"Method OPTIONS not allowed for {request.path} (use {allow}; a CORS preflight "
                                    "is answered only when the server allows other origins, see --cors-origin)",
                               {"Allow": allow})
            return Response(status=204, headers=guard.preflight_headers(origin or "", cors_origins))
        check_length(request.content_length)
        if rescan_on_request:
            registry.scan()
        return None

    @app.after_request
    def _after(resp):
        origin = request.headers.get("Origin")
        if origin and cors_origins:
            resp.headers.update(guard.cors_headers(origin, cors_origins))
        # A client that hung up gets no answer, whatever the model made meanwhile: the request counts as
        # cancelled (499, "client closed request"), as one cancelled while it waited does.
        gone = request.environ.get("waitress.client_disconnected")
        status = 499 if gone is not None and gone() else resp.status_code
        count_request(metrics, registry, request.path, status, time.perf_counter() - g.t0)
        return resp

    @app.get("/")
    def _page():
        return Response(index_html, mimetype="text/html")

    @app.get("/v1/models")
    def _models():
        return reply({"models": registry.listing()})

    @app.get("/monitoring/prometheus/metrics")
    def _metrics():
        def states():
            return [(m["name"], int(v), st) for m in registry.listing() for v, st in m["states"].items()]

        return Response(metrics.render(states), mimetype="text/plain; version=0.0.4")

    def execute_for(model: LoadedModel, deadline: Deadline):
        def execute(sig: Signature, arrays: dict):
            try:
                decoder = model.decoder if model.decoder is not None and model.decoder.supports(sig.name) else None
                # Requests merge only with others that give the same value to an input the model applies to
                # its whole call (a caption's beam): part of the queue's key.
                shared = tuple((k, arrays[k].tobytes()) for k in model.limits.same_in_call
                               if k in arrays) if model.limits is not None else ()
                return scheduler.run((model.name, model.version, id(model)) + shared + (sig.name,), model.name,
                                     lambda a: run_signature(sig, a), arrays, deadline, is_large(model.limits, arrays),
                                     model.limits.max_batch if model.limits is not None else None,
                                     (decoder, sig) if decoder is not None else None, not sig.padded_outputs)
            except ScheduleError as e:
                raise ApiError(e.status, e.message) from None
        return execute

    def model_api(method: str, path: str, check_method: bool = True):
        """The parts of a model API path, ``/v1/models/...``, and the methods it takes (404 for a malformed path,
        405 for a method it does not take, unless ``check_method`` is False)."""
        rest = path[len(_MODEL_API):]
        m = _ROUTE.match(rest)
        if not m:
            raise ApiError(404, f"Malformed request: {method} /v1/models/{shown(rest)}")
        allow = "POST" if m.group("suffix") in _POSTED else "GET, HEAD"
        if check_method and method not in allow.split(", "):
            raise ApiError(405, f"Method {method} not allowed for {path} (use {allow})", {"Allow": allow})
        return m, allow

    @app.route("/v1/models/<path:rest>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def _model(rest: str):
        m, _ = model_api(request.method, request.path)
        name, suffix = m.group("name"), m.group("suffix") or ""
        if m.group("label") is not None:
            registry.entries(name)  # 404 for an unknown model first
            raise ApiError(404, f"Unrecognized servable version label: {m.group('label')} "
                                f"(this server has no version labels; use /versions/N)")
        version = None
        if m.group("version") is not None:
            v = m.group("version")
            digits = v.lstrip("0")
            if not VERSION_DIR.fullmatch(v) or not digits:
                raise ApiError(404, f"Malformed version: {shown(v)} (versions are positive integers)")
            if len(digits) > 255:  # longer than any directory name (and int() refuses 4,300 digits)
                registry.entries(name)  # 404 for an unknown model first
                raise ApiError(404, f"Servable not found for request: Specific({shown(name)}, {shown(digits)})")
            version = int(digits)
        if suffix == "":
            return reply({"model_version_status": registry.status(name, version)})
        model = registry.get(name, version)
        if suffix == "/metadata":
            return reply({
                "model_spec": {"name": name, "signature_name": "", "version": str(model.version)},
                "metadata": {"signature_def": {"signature_def": {
                    k: s.metadata() for k, s in sorted(model.signatures.items())}},
                    "page_form": model.form},  # not in TF Serving: what the try-it page shows
            })
        if suffix != ":predict":
            raise bad_request(_unsupported_method(model, suffix[1:]))
        raw = guard.inflate(request.get_data(cache=False), request.headers.get("Content-Encoding"), max_body_bytes)
        try:
            body = loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:  # ValueError: JSONDecodeError, or an integer of 4,300+ digits
            raise bad_request(f"JSON Parse error: {e}") from None
        except RecursionError:
            raise bad_request("JSON Parse error: nested too deeply") from None
        deadline = Deadline(scheduler.config.request_timeout, request.environ.get("waitress.client_disconnected"))
        try:
            return reply(predict(model, body, execute_for(model, deadline)))
        except RecursionError:
            raise bad_request("the request's lists are nested too deeply for the signature") from None

    return app
