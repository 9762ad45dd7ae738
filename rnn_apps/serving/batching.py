"""Bounded, batched model calls for ``rnn-apps serve``.

* :class:`Deadline`: each request has one (``--request-timeout``); waiting for a slot or a batch ends at
  it, and so does a long request between its chunks; a client that hangs up is treated alike.
* :class:`Scheduler`: a request of more than ``light_rows`` examples (or ``light_bytes`` of strings) is
  *heavy*: it runs in one of ``heavy_slots`` slots, in chunks of ``max_batch_size`` examples, so that it
  cannot hold the CPU for long at a stretch and short requests are never queued behind it; at most
  ``heavy_queue`` heavy requests wait, others get 503 at once.
* :class:`BatchQueue`: server-side batching as TensorFlow Serving's ``--enable_batching``. Concurrent
  light requests to one signature of one model version are concatenated along the batch axis and run
  as one call of at most ``max_batch_size`` examples; up to ``batch_threads`` batches of a signature
  run at a time (one per CPU core by default, as TF Serving's ``num_batch_threads``), and the requests
  that arrive meanwhile form the next ones. When the last batch held several requests (clients
  are arriving together) a batch also waits up to ``batch_timeout`` to fill, counted from when it could
  start (so that the clients of a batch that just ended join the next one); a lone client is never
  delayed. A recurrent decoder's cost grows far slower than its batch (the steps are
  sequential), so merged calls answer many more requests per second. When a merged call fails (e.g.
  one request holds an unknown character) each request is run alone, so only the bad one gets the error.
* For a model that decodes step by step, :class:`Scheduler` batches continuously instead
  (:mod:`rnn_apps.serving.continuous`): requests join and leave a running batch between steps.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

Arrays = Dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]


class ScheduleError(Exception):
    """A request that cannot run: ``status`` 503 (busy), 504 (deadline passed) or 499 (client gone)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class Deadline:
    """When a request must be done by, and whether its client is still there."""

    def __init__(self, seconds: float, client_gone: Optional[Callable[[], bool]] = None):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._gone = client_gone or (lambda: False)

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self) -> None:
        """Raise :class:`ScheduleError` when the deadline has passed or the client hung up."""
        if self._gone():
            raise ScheduleError(499, "the client closed the connection; the request was cancelled")
        if self.remaining() <= 0:
            raise ScheduleError(504, f"the request did not finish within its deadline of {self.seconds:g} s "
                                     f"(the server is busy or the request is too large); it was cancelled")


@dataclass
class SchedulerConfig:
    """Knobs of :class:`Scheduler` (the ``rnn-apps serve`` options of the same names)."""

    enable_batching: bool = True
    max_batch_size: int = 8
    batch_threads: int = 0  # 0: one per CPU core, as TF Serving's num_batch_threads
    batch_timeout: float = 0.005
    heavy_slots: int = 1
    heavy_queue: int = 8
    light_rows: int = 8
    light_bytes: int = 4096
    request_timeout: float = 60.0

    def __post_init__(self):
        if self.batch_threads == 0:
            self.batch_threads = os.cpu_count() or 1
        for name in ("max_batch_size", "batch_threads", "heavy_slots", "light_rows", "light_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer; received {v!r}.")
        if isinstance(self.heavy_queue, bool) or not isinstance(self.heavy_queue, int) or self.heavy_queue < 0:
            raise ValueError(f"heavy_queue must be an integer >= 0; received {self.heavy_queue!r}.")
        if not 0 <= self.batch_timeout <= 10:
            raise ValueError(f"batch_timeout must be from 0 to 10 seconds; received {self.batch_timeout!r}.")
        if not 0 < self.request_timeout < float("inf"):
            raise ValueError(f"request_timeout must be a positive number of seconds; received {self.request_timeout!r}.")


def _batched(arrays: Arrays) -> bool:
    """Whether every input has a batch axis (scalars are shared by the whole request, so cannot merge)."""
    return bool(arrays) and all(a.ndim >= 1 for a in arrays.values()) and \
        len({a.shape[0] for a in arrays.values()}) == 1


def _rows(arrays: Arrays) -> int:
    return next(iter(arrays.values())).shape[0]


def _row_count(arrays: Arrays) -> Optional[int]:
    """The rows of a request whose inputs with a batch axis all have the same number (scalars, shared by
    every row, aside), or None: such a request can run in chunks of rows, each with the scalars whole."""
    rows = {a.shape[0] for a in arrays.values() if a.ndim >= 1}
    return rows.pop() if len(rows) == 1 else None


def _pad_value(dtype: np.dtype):
    """What a model pads with: empty strings, zeros, False."""
    return b"" if dtype == object else np.zeros((), dtype)


def _concat_padded(parts: List[np.ndarray]) -> np.ndarray:
    """Chunks' outputs joined along the batch axis, each padded (at the end of its other axes) to the largest
    chunk's shape, as the model pads the rows of one call to its longest: a padded output (a text's tokens, a
    caption's words) then equals the one call's over all rows."""
    if len({p.shape[1:] for p in parts}) == 1:
        return np.concatenate(parts)
    shape = tuple(max(s) for s in zip(*(p.shape[1:] for p in parts)))
    padded = []
    for p in parts:
        q = np.full((p.shape[0],) + shape, _pad_value(p.dtype), dtype=p.dtype)
        q[(slice(None),) + tuple(slice(0, n) for n in p.shape[1:])] = p
        padded.append(q)
    return np.concatenate(padded)


def _split_outputs(out: Arrays, sizes: List[int]) -> Optional[List[Arrays]]:
    """Per-request slices of a merged call's outputs, or None when an output has no batch axis."""
    total = sum(sizes)
    if any(v.ndim == 0 or v.shape[0] != total for v in out.values()):
        return None
    parts, start = [], 0
    for n in sizes:
        parts.append({k: v[start:start + n] for k, v in out.items()})
        start += n
    return parts


class _Item:
    __slots__ = ("run", "arrays", "rows", "t0", "deadline", "done", "result", "error")

    def __init__(self, run: RunFn, arrays: Arrays, deadline: Deadline):
        self.run = run  # the requests of one queue run the same signature; each carries it, so that an
        self.arrays = arrays  # idle queue holds no reference to a model version that has been unloaded
        self.rows = _rows(arrays)
        self.t0 = time.monotonic()
        self.deadline = deadline
        self.done = False
        self.result: Optional[Arrays] = None
        self.error: Optional[BaseException] = None


class BatchQueue:
    """Merges concurrent calls of one signature (see the module docstring).

    The first waiting request leads: it waits for the batch to fill (or ``timeout``), runs it and hands
    each request its slice; the next waiting request then leads the next batch, at once if fewer than
    ``threads`` batches are running.
    """

    def __init__(self, max_batch_size: int, timeout: float, on_batch: Optional[Callable[[int], None]] = None,
                 threads: int = 1):
        self.max_batch_size = max_batch_size
        self.threads = threads
        self.timeout = timeout
        self._on_batch = on_batch or (lambda n: None)
        self._cond = threading.Condition()
        self._pending: List[_Item] = []
        self._running = 0  # batches running now (at most ``threads``)
        self._last_requests = 1  # requests in the last batch: several means clients arrive together

    def idle(self) -> bool:
        """No request waiting and no batch running."""
        with self._cond:
            return not self._pending and self._running == 0

    def _pending_rows(self) -> int:
        return sum(i.rows for i in self._pending)

    def submit(self, run: RunFn, arrays: Arrays, deadline: Deadline) -> Arrays:
        """``run(arrays)``, merged with the other requests waiting, or alone."""
        item = _Item(run, arrays, deadline)
        with self._cond:
            self._pending.append(item)
            self._cond.notify_all()
            batch = self._wait_turn(item)
        if batch is not None:
            try:
                self._execute(batch)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.result

    def _wait_turn(self, item: _Item) -> Optional[List[_Item]]:
        """Under the lock: wait until ``item`` is done (None) or leads a batch (returned)."""
        while not item.done:
            if self._running < self.threads and self._pending and self._pending[0] is item:
                # The wait to fill counts from the start of this turn, not from the request's arrival: a
                # request that waited through a running batch would otherwise start at once with those
                # that arrived meanwhile, while the clients of the batch that just ended are sending their
                # next requests, and concurrent clients would settle into halves that alternate.
                turn = time.monotonic()
                while self._last_requests > 1 and self._pending_rows() < self.max_batch_size:
                    left = turn + self.timeout - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, rows = [], 0
                while self._pending and (not batch or rows + self._pending[0].rows <= self.max_batch_size):
                    rows += self._pending[0].rows
                    batch.append(self._pending.pop(0))
                self._running += 1
                self._last_requests = len(batch)
                return batch
            if item in self._pending:
                try:
                    item.deadline.check()
                except ScheduleError:
                    self._pending.remove(item)
                    self._cond.notify_all()
                    raise
            self._cond.wait(0.25)
        return None

    def _execute(self, batch: List[_Item]) -> None:
        self._on_batch(sum(i.rows for i in batch))
        parts = None
        if len(batch) > 1:
            try:
                merged = {k: np.concatenate([i.arrays[k] for i in batch]) for k in batch[0].arrays}
                parts = _split_outputs(batch[0].run(merged), [i.rows for i in batch])
            except Exception:  # noqa: BLE001 - one bad request fails the merged call: run each alone
                parts = None
        for idx, it in enumerate(batch):
            if parts is not None:
                it.result = parts[idx]
            else:
                try:
                    it.result = it.run(it.arrays)
                except BaseException as e:  # noqa: BLE001 - handed to the request's own thread
                    it.error = e
        with self._cond:
            for it in batch:
                it.done = True
            self._cond.notify_all()


class Scheduler:
    """Runs model calls within the limits of :class:`SchedulerConfig` (one per server)."""

    def __init__(self, config: SchedulerConfig, on_batch: Optional[Callable[[str, int], None]] = None):
        self.config = config
        self._on_batch = on_batch or (lambda model, n: None)
        self._lock = threading.Lock()
        self._queues: Dict[tuple, BatchQueue] = {}
        self._direct: set = set()  # model versions whose one request runs its signature directly (continuous)
        self._heavy = threading.BoundedSemaphore(max(1, config.heavy_slots))
        self._heavy_waiting = 0

    def heavy(self, arrays: Arrays) -> bool:
        c = self.config
        rows = max([a.shape[0] for a in arrays.values() if a.ndim >= 1] or [1])
        nbytes = sum(sum(len(x) for x in a.reshape(-1)) if a.dtype == object else a.nbytes for a in arrays.values())
        return rows > c.light_rows or nbytes > c.light_bytes

    def run(self, key: tuple, model_name: str, run: RunFn, arrays: Arrays, deadline: Deadline,
            large: bool = False, max_rows: Optional[int] = None, continuous=None, mergeable: bool = True) -> Arrays:
        """Run ``run(arrays)``: batched with other requests of ``key``, in a heavy slot, or directly.

        ``large``: the caller knows the request is large (e.g. from its app's limits), whatever its size.
        ``max_rows``: the most examples the model takes in one call (its app's ``max_batch``, which the
        exported graph checks too): merged batches and chunks stay within it.
        ``continuous``: ``(decoder, signature)`` when the model can decode the signature step by step
        (:mod:`rnn_apps.serving.continuous`): light requests then join the model's running batch, all
        signatures of one model version together (``key[:-1]``).
        ``mergeable``: False when a row's answer depends on the other rows of its call (outputs padded to the
        longest row): such requests are never merged with others (a large one still runs in chunks, whose
        outputs are padded alike and joined).
        """
        deadline.check()
        c = self.config
        cap = min(c.max_batch_size, max_rows) if max_rows else c.max_batch_size
        if large or self.heavy(arrays):
            return self._run_heavy(model_name, run, arrays, deadline, cap)
        if c.enable_batching and continuous is not None and _batched(arrays) and _rows(arrays) <= cap:
            return self._run_continuous(key[:-1], model_name, continuous, run, arrays, deadline, cap)
        if c.enable_batching and mergeable and _batched(arrays) and _rows(arrays) <= cap:
            shapes = tuple((k, v.shape[1:], v.dtype.str) for k, v in sorted(arrays.items()))
            qkey = key + shapes
            with self._lock:
                q = self._queues.get(qkey)
                if q is None:
                    q = self._queues[qkey] = BatchQueue(cap, c.batch_timeout,
                                                        lambda n, m=model_name: self._on_batch(m, n),
                                                        c.batch_threads)
            try:
                return q.submit(run, arrays, deadline)
            finally:
                with self._lock:  # forget idle queues, so that many shapes or versions cannot pile them up
                    if q.idle() and self._queues.get(qkey) is q:
                        del self._queues[qkey]
        self._on_batch(model_name, _rows(arrays) if _batched(arrays) else 1)
        return run(arrays)

    def _run_continuous(self, key: tuple, model_name: str, continuous, run: RunFn, arrays: Arrays,
                        deadline: Deadline, cap: int) -> Arrays:
        from rnn_apps.serving.continuous import ContinuousBatcher

        decoder, sig = continuous
        with self._lock:
            # Up to ``batch_threads`` batchers per model version, each decoding on its own thread. A request
            # joins the first batcher with room for its rows, and only when every running batch is full does
            # it start another (or wait in the least loaded one): a step costs little more for more rows, so
            # one full batch beats two half-full ones competing for the same cores (8 poem clients on 2
            # cores: 80 poems/s against 75 when requests were spread over two batchers). A request that finds
            # the model idle calls the signature directly (one call, no decoding state to carry between
            # steps); requests that arrive meanwhile start a batch.
            keys = [("continuous", i) + key for i in range(self.config.batch_threads)]
            alone = key not in self._direct and not any(k in self._queues and not self._queues[k].idle() for k in keys)
            if alone:
                self._direct.add(key)
            else:
                load = lambda k: self._queues[k].load() if k in self._queues else 0  # noqa: E731
                rows = _rows(arrays)
                qkey = next((k for k in keys if load(k) + rows <= cap), None) or min(keys, key=load)
                q = self._queues.get(qkey)
                if q is None:
                    q = self._queues[qkey] = ContinuousBatcher(decoder, cap,
                                                               lambda n, m=model_name: self._on_batch(m, n))
        if alone:
            try:
                self._on_batch(model_name, _rows(arrays))
                return run(arrays)
            finally:
                with self._lock:
                    self._direct.discard(key)
        try:
            return q.submit(sig, arrays, deadline)
        finally:
            with self._lock:  # forget idle batchers: an unloaded version is not kept alive by one
                if q.idle() and self._queues.get(qkey) is q:
                    del self._queues[qkey]

    def _run_heavy(self, model_name: str, run: RunFn, arrays: Arrays, deadline: Deadline, step: int) -> Arrays:
        c = self.config
        with self._lock:
            if self._heavy_waiting >= c.heavy_queue + c.heavy_slots:
                raise ScheduleError(503, f"the server is busy with {self._heavy_waiting} large requests; "
                                         f"retry later or send smaller batches")
            self._heavy_waiting += 1
        try:
            while not self._heavy.acquire(timeout=0.25):
                deadline.check()
            try:
                return self._chunked(model_name, run, arrays, deadline, step)
            finally:
                self._heavy.release()
        finally:
            with self._lock:
                self._heavy_waiting -= 1
            _return_freed_memory()

    def _chunked(self, model_name: str, run: RunFn, arrays: Arrays, deadline: Deadline, step: int) -> Arrays:
        step = max(1, step)
        n = _row_count(arrays)  # a scalar input (a beam width, say) goes whole with every chunk
        if n is None or n <= step:
            self._on_batch(model_name, n or 1)
            return run(arrays)
        parts: List[Arrays] = []
        for start in range(0, n, step):
            deadline.check()
            chunk = {k: v[start:start + step] if v.ndim >= 1 else v for k, v in arrays.items()}
            rows = min(step, n - start)
            self._on_batch(model_name, rows)
            out = run(chunk)
            if _split_outputs(out, [rows]) is None:  # an output without a batch axis: run it whole
                return run(arrays)
            parts.append(out)
        return {k: _concat_padded([p[k] for p in parts]) for k in parts[0]}


def _return_freed_memory() -> None:
    """Give freed heap back to the OS after a large request (glibc keeps it otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
