"""Serve exported SavedModels with TensorFlow Serving's REST API.

``rnn-apps serve`` exposes every SavedModel under a models directory laid out the way
TensorFlow Serving expects::

    <models>/<name>/<version>/saved_model.pb      (version: positive integer directory name)

(or, as TF Serving's ``--model_base_path``, the directory of one model's versions: that model alone, under
the directory's name), with the same REST endpoints and JSON formats as ``tensorflow/serving`` on port 8501, so
a client written against TF Serving works unchanged (and the same directory can be handed
to TF Serving in production; see docs/serve.md):

* ``GET  /v1/models/{name}[/versions/{v}]``            model status
* ``GET  /v1/models/{name}[/versions/{v}]/metadata``   signature metadata
* ``POST /v1/models/{name}[/versions/{v}]:predict``    row (``instances``) or columnar (``inputs``)

plus two additions that TF Serving lacks: ``GET /v1/models`` (names and versions) and
``GET /`` (a self-contained page with a small form per model).

Only integer-named version directories that contain ``saved_model.pb`` are versions, so an
export in progress (``.tmp-*`` directory, renamed into place when complete) is never served.
The directory is polled every ``poll_seconds``: new versions are loaded in the background
and become the default once loaded (the previous version keeps serving meanwhile); a
version that fails to load is reported as ``END`` with its error by the status API and
answered with 503, and it is retried when its files change (e.g. a fixed export renamed
into place). Versions stay loaded once loaded; deleting a version directory unloads it.

The HTTP side is a small Flask app served by waitress (multithreaded, pure Python).
"""

from rnn_apps.serving.codec import to_array, to_json
from rnn_apps.serving.errors import ApiError
from rnn_apps.serving.predict import predict
from rnn_apps.serving.registry import DEFAULT_SIGNATURE, PREDICT_METHOD, LoadedModel, ModelRegistry, Signature
from rnn_apps.serving.routes import create_app
from rnn_apps.serving.server import ModelServer, ServeError, make_server, run_server

__all__ = ["ApiError", "DEFAULT_SIGNATURE", "LoadedModel", "ModelRegistry", "ModelServer", "PREDICT_METHOD",
           "ServeError", "Signature", "create_app", "make_server", "predict", "run_server", "to_array", "to_json"]
