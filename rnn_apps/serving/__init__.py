"""Parts of ``rnn-apps serve`` (:mod:`rnn_apps.serve`): input checks, scheduling and batching, metrics,
warm-up, and the HTTP guards (gzip bodies, CORS and Host checks, connection limits)."""
