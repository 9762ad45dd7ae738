"""Continuous batching for models that generate step by step (``rnn-apps serve``).

Merging whole requests into one model call (:class:`rnn_apps.serving.batching.BatchQueue`) makes every
request of a merged call wait for its longest answer: a batch of eight poems runs until the longest of
the eight ends, while the others' places idle. Continuous batching (Yu et al., 2022, "Orca: A Distributed
Serving System for Transformer-Based Generative Models", iteration-level scheduling) runs the rows of
all concurrent requests as one batch a few steps at a time, hands each answer back as soon as its rows
end, and puts waiting requests into the free places between steps.

A model takes part when its loaded object (``tf.saved_model.load``) has, besides its signatures:

* ``decode_start_<signature>``: the signature's inputs -> a decoding *state*, a dict of batch-first tensors
  with a bool ``done`` [B] and int32 ``ids`` [B, T];
* ``decode_steps(state, steps)``: up to ``steps`` more steps of every row, stopping early when a row ends;
* ``decode_text(ids)``: the signature's outputs for finished rows.

A row's result must not depend on the other rows or on when it joined (the poem model draws each token
from the row's seed and position), so a request gets what the signature itself would give. These are
functions, not signatures: TF Serving does not see them, and clients cannot call them.
"""

from __future__ import annotations

import threading
from typing import Callable, List, Optional

import numpy as np

from rnn_apps.serving.batching import Arrays, Deadline, ScheduleError
from rnn_apps.serving.errors import ApiError
from rnn_apps.serving.predict import run_function

START_PREFIX = "decode_start_"
STEPS = 16  # steps per call at most: how long a new request may wait for a place in a running batch
MAX_STEPS = 1 << 30  # a lone request: until it ends


class Decoder:
    """The step-by-step decoding functions of a loaded model (see the module docstring)."""

    def __init__(self, obj):
        self._obj = obj
        self._steps = _direct(obj.decode_steps)
        self._text = _direct(obj.decode_text)
        self._starts = {}

    @classmethod
    def of(cls, obj) -> Optional["Decoder"]:
        """The decoder of a loaded model, or None when it has no step-by-step functions."""
        return cls(obj) if hasattr(obj, "decode_steps") and hasattr(obj, "decode_text") else None

    def supports(self, signature: str) -> bool:
        return hasattr(self._obj, START_PREFIX + signature)

    def start(self, sig, arrays: Arrays) -> Arrays:
        """The state of the rows of one request of signature ``sig`` (bad input: a 400, as the signature)."""
        fn = self._starts.get(sig.name)
        if fn is None:
            fn = self._starts[sig.name] = _direct(getattr(self._obj, START_PREFIX + sig.name))
        return run_function(fn, arrays, {k: s.dtype for k, s in sig.inputs.items()})

    def steps(self, state: Arrays, steps: int) -> Arrays:
        """``decode_steps`` on ``state``, its batch padded to a power of two with ended rows (the step
        function is compiled once per batch size, so only a few sizes ever occur)."""
        import tensorflow as tf

        rows = int(state["done"].shape[0])
        pad = (1 << (rows - 1).bit_length()) - rows
        if pad:
            state = {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in state.items()}
            state["done"][rows:] = True  # an ended row is left as it is
        # Tensors made here, one tf.constant each: a restored function converting 20 NumPy arrays itself
        # costs about 0.5 ms more per call, a third of a step at batch 8.
        out = self._steps({k: tf.constant(v) for k, v in state.items()}, tf.constant(steps, tf.int32))
        return {k: v.numpy()[:rows] for k, v in out.items()}

    def text(self, ids: np.ndarray) -> Arrays:
        return {k: v.numpy() for k, v in self._text(ids).items()}

    def warm_up(self, state: Arrays, max_rows: int) -> None:
        """Compile the step function for every batch size it pads to (1, 2, 4, ...), from one started row."""
        rows = 1
        while True:
            self.steps({k: np.repeat(v[:1], rows, axis=0) for k, v in state.items()}, 1)
            if rows >= max_rows:
                break
            rows *= 2


def _direct(fn):
    """A restored function's one concrete function, to be called directly (``fn`` itself if it has several).

    The polymorphic call first binds its arguments to the input signature: about 0.5 ms of every call of
    a few steps with the 20 tensors of a poem's state, 0.3 ms of a poem's start and 0.1 ms of its text.
    """
    concrete = getattr(fn, "concrete_functions", None) or []
    return concrete[0] if len(concrete) == 1 else fn


class _Request:
    __slots__ = ("state", "rows", "outputs", "deadline", "done", "result", "error")

    def __init__(self, state: Arrays, outputs: List[str], deadline: Deadline):
        self.state = state
        self.rows = int(state["done"].shape[0])
        self.outputs = outputs
        self.deadline = deadline
        self.done = False
        self.result: Optional[Arrays] = None
        self.error: Optional[BaseException] = None


class ContinuousBatcher:
    """Runs the rows of concurrent requests of one model version as one batch (see the module docstring).

    One thread decodes while rows are running; it starts with the first request and ends when none is
    left, so an idle model holds no thread. Requests wait (first come, first served) while the batch holds
    ``max_rows`` rows.
    """

    def __init__(self, decoder: Decoder, max_rows: int, on_batch: Optional[Callable[[int], None]] = None,
                 steps: int = STEPS):
        if max_rows < 1 or steps < 1:
            raise ValueError(f"max_rows and steps must be positive; received {max_rows!r} and {steps!r}.")
        self.decoder = decoder
        self.max_rows = max_rows
        self.steps = steps
        self._on_batch = on_batch or (lambda n: None)
        self._cond = threading.Condition()
        self._pending: List[_Request] = []
        self._thread: Optional[threading.Thread] = None
        self._running_rows = 0

    def idle(self) -> bool:
        with self._cond:
            return self._thread is None and not self._pending

    def load(self) -> int:
        """Rows running or waiting (the scheduler sends a request to the least loaded batcher)."""
        with self._cond:
            return self._running_rows + sum(r.rows for r in self._pending)

    def submit(self, sig, arrays: Arrays, deadline: Deadline) -> Arrays:
        """The outputs of ``sig`` for ``arrays``, decoded together with the other requests running."""
        request = _Request(self.decoder.start(sig, arrays), list(sig.outputs), deadline)
        if request.rows > self.max_rows:
            raise ValueError(f"a request of {request.rows} rows cannot join a batch of {self.max_rows}")
        with self._cond:
            self._pending.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._drive, name="continuous-batching", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            while not request.done:
                # The decoding thread checks deadlines between steps; this is the fallback if it cannot.
                if deadline.remaining() < -5.0 and request in self._pending:
                    self._pending.remove(request)
                    deadline.check()
                self._cond.wait(0.25)
        if request.error is not None:
            raise request.error
        return request.result

    def _drive(self) -> None:
        running: List[_Request] = []
        while True:
            with self._cond:
                running = self._without_expired(running)
                self._pending = self._without_expired(self._pending)
                rows = sum(r.rows for r in running)
                while self._pending and rows + self._pending[0].rows <= self.max_rows:
                    rows += self._pending[0].rows
                    running.append(self._pending.pop(0))
                self._running_rows = rows
                if not running:
                    self._thread = None
                    return
                # A lone request runs to its end in one call (no chunks to pay for); with company, the
                # batch stops every few steps, so that requests arriving meanwhile join soon.
                steps = self.steps if len(running) > 1 or self._pending else MAX_STEPS
            try:
                running = self._advance(running, rows, steps)
            except Exception as e:  # noqa: BLE001 - a failing model call fails its requests, not the server
                self._finish(running, error=ApiError(500, f"decoding failed: {e}"))
                running = []

    def _without_expired(self, requests: List[_Request]) -> List[_Request]:
        """Under the lock: ``requests`` without those whose deadline passed or whose client left (answered)."""
        kept = []
        for r in requests:
            try:
                r.deadline.check()
                kept.append(r)
            except ScheduleError as e:
                r.error, r.done = e, True
                self._cond.notify_all()
        return kept

    def _advance(self, running: List[_Request], rows: int, steps: int) -> List[_Request]:
        """One call of the step function on all running rows; answers the requests whose rows all ended."""
        keys = list(running[0].state)
        merged = {k: np.concatenate([r.state[k] for r in running]) for k in keys}
        self._on_batch(rows)
        out = self.decoder.steps(merged, steps)
        start = 0
        for r in running:
            r.state = {k: v[start:start + r.rows] for k, v in out.items()}
            start += r.rows
        ended = [r for r in running if r.state["done"].all()]
        if ended:
            texts = self.decoder.text(np.concatenate([r.state["ids"] for r in ended]))
            start = 0
            for r in ended:
                r.result = {k: v[start:start + r.rows] for k, v in texts.items() if k in r.outputs}
                start += r.rows
            self._finish(ended)
        return [r for r in running if not r.done]

    def _finish(self, requests: List[_Request], error: Optional[BaseException] = None) -> None:
        with self._cond:
            for r in requests:
                if error is not None:
                    r.error = error
                r.done = True
            self._cond.notify_all()

