"""The Keras internals rnn_apps relies on, each behind one guarded import or patch, in one place.

Keras 3 keeps some machinery the package needs outside its public API (``keras.src``). Every such use is
here, with a fallback or a no-op when a Keras version no longer has it, so that a Keras upgrade is checked
in one module:

* :class:`DropoutRNNCell`: the base class whose dropout masks ``keras.layers.RNN`` resets per sequence.
* :func:`reduce_weighted_values`: Keras's weighting and reduction of per-element losses.
* :func:`backend_rnn`: the time loop ``keras.layers.RNN`` runs (``keras.src.backend.rnn``).
* :func:`patch_multi_worker_reduce`: the averaging of scalar metrics under ``MultiWorkerMirroredStrategy``.
"""

from __future__ import annotations

import keras
from keras import ops

try:  # Keras's RNN layer resets cached dropout masks only on cells of this class.
    from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
except ImportError:  # pragma: no cover - very old or very new Keras

    class DropoutRNNCell:  # type: ignore[no-redef]
        """Fallback: a fresh mask per call (masks are not shared across steps)."""

        def get_dropout_mask(self, step_input):
            return keras.random.dropout(ops.ones_like(step_input), self.dropout, seed=self.seed_generator)

        def get_recurrent_dropout_mask(self, step_input):
            return keras.random.dropout(ops.ones_like(step_input), self.recurrent_dropout, seed=self.seed_generator)

        def reset_dropout_mask(self):
            pass

        def reset_recurrent_dropout_mask(self):
            pass


def reduce_weighted_values(values, sample_weight=None, reduction="sum_over_batch_size", dtype=None):
    """Keras's own weighting and reduction of per-element loss ``values`` (as its built-in losses do)."""
    from keras.src.losses.loss import reduce_weighted_values as keras_reduce

    return keras_reduce(values, sample_weight=sample_weight, reduction=reduction, dtype=dtype)


def backend_rnn(*args, **kwargs):
    """``keras.src.backend.rnn``: the loop over time steps that ``keras.layers.RNN`` runs."""
    from keras.src import backend as keras_backend

    return keras_backend.rnn(*args, **kwargs)


def patch_multi_worker_reduce() -> None:
    """Work around Keras 3 averaging scalar metrics across workers with ``axis=0``.

    Under ``MultiWorkerMirroredStrategy`` Keras's TF trainer reduces each (scalar) metric with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails for rank-0 values. Scalars are reduced with
    ``axis=None`` instead; everything else goes to Keras's own function unchanged.
    """
    try:
        from keras.src.backend.tensorflow import trainer as tf_trainer
    except ImportError:  # pragma: no cover
        return
    if getattr(tf_trainer.reduce_per_replica, "_rnn_apps_patched", False):
        return
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        from keras.src import tree

        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            def _reduce(v):
                rank = v.values[0].shape.rank if hasattr(v, "values") else getattr(v.shape, "rank", None)
                if rank == 0:
                    return strategy.reduce("MEAN", v, axis=None)
                return original(v, strategy, reduction)

            return tree.map_structure(_reduce, values)
        return original(values, strategy, reduction)

    reduce_per_replica._rnn_apps_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
