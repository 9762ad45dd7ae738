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


def check_rate(rate, name: str) -> float:
    """Return a dropout rate in [0, 1], or raise a ValueError."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a float in [0, 1]; received {rate!r}.") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1]; received {value}.")
    return value


def check_positive_ints(**values) -> None:
    """Raise a ValueError for the first of ``values`` (name=value) that is not a positive int (a bool is not)."""
    for arg, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"`{arg}` must be a positive integer; received {v!r}.")
