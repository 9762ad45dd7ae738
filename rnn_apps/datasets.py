"""``tf.data`` pipelines over the apps' batch plans, and their split across the replicas of a strategy."""

from __future__ import annotations

from typing import Callable, Optional


def whole_batch_options(ds):
    """``ds`` with auto-sharding off: each replica or worker gets whole batches (see :func:`distribute_batches`)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)


def generator_dataset(make_batches: Callable, output_signature, num_batches: Optional[int] = None):
    """A prefetched ``tf.data.Dataset`` over the batches a Python generator yields (the apps' batch plans).

    Args:
        make_batches: Called with no arguments, returns an iterator of batches (each call starts afresh).
        output_signature: The batches' ``tf.TensorSpec`` structure.
        num_batches: How many batches the iterator yields, for a finite one (validation). Keras is told
            (``assert_cardinality``), so it knows where an evaluation ends instead of running into the end
            and warning "Your input ran out of data". None: an endless iterator (training).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_generator(make_batches, output_signature=output_signature)
    if num_batches is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(int(num_batches)))
    return whole_batch_options(ds).prefetch(2)


def distribute_batches(strategy, make_dataset):
    """Give each replica an equal, contiguous share of every global batch.

    ``make_dataset()`` yields global batches (tuples of tensors whose first dimension is a multiple of the
    number of replicas). Every worker builds the same stream and keeps the shares of its own replicas, so
    a step on N replicas computes exactly the gradient of the single-device step on the whole batch.
    """
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    def dataset_fn(ctx):
        local = replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local

        def shares(*batch):
            parts = [tf.reshape(t, tf.concat([[replicas, tf.shape(t)[0] // replicas], tf.shape(t)[1:]], 0))[first : first + local]
                     for t in batch]
            return tf.data.Dataset.from_tensor_slices(tuple(parts))

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return make_dataset().flat_map(shares).with_options(options)

    return strategy.distribute_datasets_from_function(dataset_fn)
