"""The parts of ``rnn-apps serve`` (:mod:`rnn_apps.serve` re-exports the public names):

* :mod:`~rnn_apps.serving.registry`: the models directory, loading, warm-up, signatures;
* :mod:`~rnn_apps.serving.codec`: JSON values <-> arrays as TF Serving converts them;
* :mod:`~rnn_apps.serving.predict`: the predict request (row or columnar), checked and run;
* :mod:`~rnn_apps.serving.checks`: each app's input limits (:mod:`rnn_apps.limits`) applied to a request;
* :mod:`~rnn_apps.serving.batching`: deadlines, the lane for large requests, server-side batching;
* :mod:`~rnn_apps.serving.metrics`: Prometheus metrics;
* :mod:`~rnn_apps.serving.warmup`: TF Serving's warm-up file, written and read;
* :mod:`~rnn_apps.serving.guard`: gzip bodies, Origin and Host checks, connection limits;
* :mod:`~rnn_apps.serving.routes` and :mod:`~rnn_apps.serving.server`: the Flask app and the waitress server;
* :mod:`~rnn_apps.serving.form`: what form the try-it page shows per model (stated by the export or derived);
* ``index.html``: the try-it page (it reads each model's form from its metadata).
"""
