"""Argument checks shared by the cells, the layers and the apps' model builders.

Each check returns the value in its canonical type, or raises a ``ValueError`` that names the argument,
what was received and what is expected.
"""

from __future__ import annotations


def check_units(units, name: str = "units") -> int:
    """Return ``units`` as an int, or raise a ValueError saying what was received."""
    if isinstance(units, bool) or not isinstance(units, (int,)) and not (
        hasattr(units, "__index__") and not isinstance(units, float)
    ):
        raise ValueError(f"`{name}` must be a positive integer; received {units!r} of type {type(units).__name__}.")
    units = int(units)
    if units <= 0:
        raise ValueError(f"`{name}` must be a positive integer; received {units}.")
    return units


def check_rate(rate, name: str, below_one: bool = False) -> float:
    """Return a dropout rate in [0, 1] (``below_one``: in [0, 1), the share a training run may drop or mask and
    still learn), or raise a ValueError."""
    span = "[0, 1)" if below_one else "[0, 1]"
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a float in {span}; received {rate!r}.") from None
    if isinstance(rate, bool) or not (0.0 <= value < 1.0 if below_one else 0.0 <= value <= 1.0):
        raise ValueError(f"`{name}` must be a float in {span}; received {rate!r}.")
    return value


def check_positive_ints(**values) -> None:
    """Raise a ValueError for the first of ``values`` (name=value) that is not a positive int (a bool is not)."""
    for arg, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"`{arg}` must be a positive integer; received {v!r}.")


# The training settings of the apps that are sizes or counts (of a network, a batch, a sequence): positive
# integers. The CLI's options declare the same ranges (rnn_apps.cli.options.SIZE).
SIZE_SETTINGS = ("units", "num_layers", "embedding_dim", "encoder_units", "encoder_layers", "decoder_units",
                 "attention_units", "feature_dim", "image_size", "batch_size", "tokens_per_batch", "max_len",
                 "max_source_len", "max_target_len", "steps_per_epoch", "horizon", "window")
# The training settings that are shares of units or inputs dropped or masked: floats in [0, 1)
# (rnn_apps.cli.options.RATE).
RATE_SETTINGS = ("dropout", "word_dropout", "recurrent_dropout", "mask_rate")


def check_settings(settings: dict) -> None:
    """Raise a ValueError for the first of a training run's ``settings`` (name=value; None: not given) out of
    its range: a size of :data:`SIZE_SETTINGS` that is not a positive integer, a rate of :data:`RATE_SETTINGS`
    outside [0, 1). The apps call it before a run directory is written; other settings are left to them."""
    for name, value in settings.items():
        if value is None:
            continue
        if name in SIZE_SETTINGS:
            check_units(value, name)
        elif name in RATE_SETTINGS:
            check_rate(value, name, below_one=True)
