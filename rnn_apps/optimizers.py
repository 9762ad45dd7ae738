"""Optimizers with a learning rate per layer, for discriminative fine-tuning.

Howard & Ruder (2018), *Universal Language Model Fine-tuning for Text Classification* (ULMFiT, §3.2),
fine-tune a pre-trained language model's layers with different learning rates: the lower a layer, the more
general what it learned and the more slowly it should move, ``η^{l-1} = η^l / 2.6`` (their classifier
fine-tuning ablation is in Table 6). It is a recipe, not a law: measured on this project's sentiment model
(README) it learned more slowly than one rate for all. :class:`DiscriminativeAdam` is Keras's Adam with that
one change, so it keeps Adam's variables (checkpoints and resumption work as for Adam) and every
schedule, clipping and weight-decay option.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional

import keras


@keras.saving.register_keras_serializable(package="rnn_apps")
class DiscriminativeAdam(keras.optimizers.Adam):
    """Adam whose step for each variable is scaled by a multiplier of the layer the variable belongs to.

    For a variable ``θ`` with multiplier ``m`` the update is Adam's with learning rate ``m·η_t``::

        m_t = β₁·m_{t-1} + (1 - β₁)·g_t,   v_t = β₂·v_{t-1} + (1 - β₂)·g_t²
        θ_t = θ_{t-1} - m·η_t·m̂_t / (√v̂_t + ε)

    ``m = 0`` freezes a variable (its moments still follow the gradients).

    Args:
        learning_rate: Adam's learning rate (a float or a schedule), the rate of variables without a multiplier.
        lr_multipliers: ``{variable path prefix: multiplier}``. A variable takes the multiplier of the longest
            prefix that its ``path`` equals or starts with followed by ``/`` (e.g. ``"encoder"`` matches
            ``encoder/bidirectional_0/...`` but not ``encoder_2/...``); others take 1.
        **kwargs: The other arguments of ``keras.optimizers.Adam``.

    Example:
        >>> opt = DiscriminativeAdam(1e-3, lr_multipliers={"embedding": 1 / 2.6**2, "encoder": 1 / 2.6})
    """

    def __init__(self, learning_rate=0.001, lr_multipliers: Optional[Mapping[str, float]] = None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        checked = {}
        for prefix, value in dict(lr_multipliers or {}).items():
            if not isinstance(prefix, str) or not prefix.strip("/"):
                raise ValueError(f"lr_multipliers keys are variable path prefixes (non-empty strings); received {prefix!r}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"The learning-rate multiplier of {prefix!r} must be a finite number >= 0; "
                                 f"received {value!r}.")
            checked[prefix.strip("/")] = float(value)
        self.lr_multipliers = checked
        self._variable_multipliers = []

    def multiplier(self, path: str) -> float:
        """The multiplier of the variable whose path is ``path``."""
        best = None
        for prefix in self.lr_multipliers:
            if (path == prefix or path.startswith(prefix + "/")) and (best is None or len(prefix) > len(best)):
                best = prefix
        return 1.0 if best is None else self.lr_multipliers[best]

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._variable_multipliers = [self.multiplier(v.path) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._variable_multipliers[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = keras.ops.multiply(learning_rate, factor)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}
