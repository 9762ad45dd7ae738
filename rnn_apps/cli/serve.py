"""``rnn-apps serve``: every model under a directory behind TensorFlow Serving's REST API (:mod:`rnn_apps.serve`)."""

from __future__ import annotations

import click

from rnn_apps.cli.common import FiniteFloatRange, IntegerRange, friendly_errors

DAY = 86400.0
"""The longest --poll-seconds and --request-timeout: a wait far longer overflows the platform's timer (a
traceback once the server runs), and a day is already longer than any use."""


@click.command()
@click.option("--models", "models_dir", default=None,
              help="Models directory, laid out NAME/VERSION/saved_model.pb (default: the shipped models/); or the "
                   "directory of one model's versions, served alone under its name (as TF Serving's "
                   "--model_base_path).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (loopback by default; requests must then name a loopback Host).")
@click.option("--port", type=IntegerRange(0, 65535), default=8501, show_default=True, help="0: any free port.")
@click.option("--max-body-mb", type=FiniteFloatRange(0, 1024, min_open=True), default=16.0, show_default=True,
              help="Largest request body accepted (after gzip inflation).")
@click.option("--poll-seconds", type=FiniteFloatRange(0, DAY), default=2.0, show_default=True,
              help="How often new versions are looked for (and the newest loaded). 0: on every request instead, "
                   "and versions load on their first request.")
@click.option("--enable-batching/--no-batching", default=True, show_default=True,
              help="Merge concurrent requests to one signature into one model call (as TF Serving's --enable_batching).")
@click.option("--max-batch-size", type=IntegerRange(1, 1024), default=8, show_default=True,
              help="Most examples in one merged call; larger requests run in chunks of this size.")
@click.option("--batch-timeout-ms", type=FiniteFloatRange(0, 1000), default=5.0, show_default=True,
              help="How long a batch waits to fill after its first request.")
@click.option("--batch-threads", type=IntegerRange(0, 256), default=0, show_default=True,
              help="Batches of one signature that run at once (0: one per CPU core).")
@click.option("--request-timeout", type=FiniteFloatRange(0.1, DAY), default=60.0, show_default=True,
              help="Seconds a request may take; a request still waiting or between chunks then is cancelled (504).")
@click.option("--heavy-slots", type=IntegerRange(1, 64), default=1, show_default=True,
              help="Large requests (over 8 examples, 4 KB of text, or a long fill or translate text) that run at "
                   "once; others wait their turn.")
@click.option("--max-connections", type=IntegerRange(4, 10000), default=100, show_default=True,
              help="Clients connected at once; at the limit those idle, receiving a request, or not reading their "
                   "answer, longest are closed to make room.")
@click.option("--idle-timeout", type=IntegerRange(1, 3600), default=30, show_default=True,
              help="Seconds after which an idle connection, or one whose client reads nothing, is closed.")
@click.option("--header-timeout", type=FiniteFloatRange(1, 3600), default=10.0, show_default=True,
              help="Seconds a request's line and headers may take to arrive; its body may take as long again, plus "
                   "1 s per --min-body-rate-kb KB received. A request slower than that gets 408.")
@click.option("--min-body-rate-kb", type=FiniteFloatRange(0.1, 1024 * 1024), default=4.0, show_default=True,
              help="Slowest rate (KB per second) at which a request body is waited for, after --header-timeout.")
@click.option("--cors-origin", "cors_origins", multiple=True,
              help="A web origin (e.g. https://app.example, or *) whose pages may call the API. May be repeated. "
                   "Default: none (browser requests from other sites get 403).")
@click.option("--intra-op-threads", type=IntegerRange(0, 1024), default=0, show_default=True,
              help="Threads that share one TensorFlow operation, as TF Serving's --tensorflow_intra_op_parallelism "
                   "(0: one per core; docs/serve.md, Threads, has measurements).")
@click.option("--inter-op-threads", type=IntegerRange(0, 1024), default=0, show_default=True,
              help="Threads that run independent TensorFlow operations at once, as TF Serving's "
                   "--tensorflow_inter_op_parallelism (0: one per core).")
@click.option("--warmup/--no-warmup", default=True, show_default=True,
              help="Replay each version's assets.extra/tf_serving_warmup_requests (or its app's typical "
                   "requests) before it serves.")
@friendly_errors
def serve(models_dir, host, port, max_body_mb, poll_seconds, enable_batching, max_batch_size, batch_timeout_ms,
          batch_threads, request_timeout, heavy_slots, max_connections, idle_timeout, header_timeout,
          min_body_rate_kb, cors_origins, intra_op_threads, inter_op_threads, warmup):
    """Serve every model under MODELS with TensorFlow Serving's REST API.

    Inputs are checked against each app's limits (the same as the commands'); metrics for Prometheus are
    at /monitoring/prometheus/metrics. A SavedModel is code: serve only models from people you trust.

    \b
    Examples:
      rnn-apps serve
      curl -d '{"instances": ["春"]}' localhost:8501/v1/models/poetry:predict
      rnn-apps serve --port 0 --no-batching
      rnn-apps serve --cors-origin https://app.example --max-batch-size 16
      rnn-apps serve --intra-op-threads 1
    """
    from rnn_apps.paths import models_root
    from rnn_apps.serve import ServeError, run_server

    try:
        run_server(models_dir or models_root(), host, port, int(max_body_mb * 1024 * 1024), poll_seconds,
                   enable_batching=enable_batching, max_batch_size=max_batch_size,
                   batch_timeout=batch_timeout_ms / 1000, batch_threads=batch_threads,
                   request_timeout=request_timeout, heavy_slots=heavy_slots,
                   max_connections=max_connections, idle_timeout=idle_timeout, header_timeout=header_timeout,
                   min_body_rate=min_body_rate_kb * 1024, cors_origins=cors_origins,
                   intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads, warmup=warmup)
    except ServeError as e:
        raise click.ClickException(str(e)) from None


COMMANDS = {None: [serve]}
