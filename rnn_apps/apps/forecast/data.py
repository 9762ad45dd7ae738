"""Time series for the forecaster: CSV reading, the built-in demo series, windowing and the back-test split.

Pure Python and NumPy (no TensorFlow).

The series is split chronologically: the last ``test_len`` values are the *back-test* (the model never trains
on them and the normalisation statistics never see them); the rest is the training part. A window pair is
``(history, target)`` = ``(values[t - window : t], values[t : t + horizon])`` for a forecast origin ``t``:

* training pairs have their whole target inside the training part (``window <= t <= split - horizon``);
* back-test pairs have their origin inside the back-test (``split <= t <= n - horizon``); their history may
  reach back into the training part (it is known at forecast time), their targets never leave the back-test.

Inputs are normalised per window and per series: ``(x - level) / scale`` where ``level`` is the mean of the
window's own history (known at forecast time, so no leakage, and it follows a trend) and ``scale`` is the
standard deviation of the training part only (:class:`Normalizer`).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import os
import re
from typing import Optional

import numpy as np

from rnn_apps import textio

DEMO_LENGTH = 720  # 30 days of hourly values
DEMO_SEASON = 24
DEFAULT_VAL_FRACTION = 0.2
MAX_ABS_VALUE = 1e30
"""The largest magnitude a CSV value may have: the model and its export compute in 32-bit floats (at most about
3.4e38, which a forecast of a few times the largest value must also stay under), and the statistics square the
values in 64-bit floats (at most about 1.8e308)."""


class ForecastDataError(ValueError):
    """A series that cannot be forecast as given (the message says what is wrong and where)."""


@dataclasses.dataclass
class Series:
    """A univariate series.

    Attributes:
        values: float64 array of the observations, oldest first.
        name: The column (or the demo's) name.
        timestamps: The time column's cells as written, or None.
        source: Where the series came from (a path, or ``"demo"``).
    """

    values: np.ndarray
    name: str
    timestamps: Optional[list] = None
    source: str = "demo"

    def __len__(self) -> int:
        return len(self.values)


# ------------------------------------------------------------------------------------------------ CSV


TIME_NAMES = ("date", "time", "datetime", "timestamp", "day", "month", "week", "year", "ds")
"""Column names that name a time column, suggested with --time-column when the column to forecast is not given."""


def read_csv(path: str, column: Optional[str] = None, time_column: Optional[str] = None) -> Series:
    """Read one numeric column (and optionally a time column) of a UTF-8 CSV file with a header row.

    Args:
        path: The CSV file.
        column: The column to forecast. Default: the only column other than ``time_column``.
        time_column: An optional column of timestamps (ISO 8601 dates/times or numbers); they must increase.

    Returns:
        A :class:`Series`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ForecastDataError: an empty file, a missing or duplicated column, a row with more cells than the header,
            an empty / non-numeric / NaN / infinite cell or one beyond :data:`MAX_ABS_VALUE` (with its line
            number), non-UTF-8 bytes, a malformed CSV (a quote never closed, text after a closing quote, a cell
            too long; :func:`rnn_apps.textio.read_table`), or timestamps out of order.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such CSV file: {path}")
    with open(path, "rb") as f:
        data = f.read()
    text = textio.decode_utf8(data, path, ForecastDataError)  # which refuses a compressed file too
    if not text.strip():
        raise ForecastDataError(f"{path} is empty: expected a header row and one value per row.")
    # read strictly (textio.read_table): a quote left open is an error naming its line, not the rows after it
    # read silently as one cell; a line ends at LF, CRLF or CR only (not at a form feed inside a cell)
    rows = textio.read_table(text, path, ForecastDataError)
    header = None
    for _, row in rows:  # the first row with a cell that is not empty
        header = [cell.strip() for cell in row]
        break
    if header is None:
        raise ForecastDataError(f"{path} has no header row (only empty cells): expected column names, then values.")
    columns = ", ".join(repr(h) for h in header)
    # A file of tabs or semicolons reads as one column whose name holds them: say how to read it.
    sep = next((name for mark, name in (("\t", "tabs"), (";", "semicolons")) if len(header) == 1 and mark in header[0]),
               None)
    hint = f" (the file looks separated by {sep}: save it as CSV, with commas between the cells)" if sep else ""
    if time_column is not None and time_column not in header:
        raise ForecastDataError(f"{path} has no time column {time_column!r}; its columns are {columns}{hint}.")
    if column is None:
        candidates = [h for h in header if h != time_column]
        if len(candidates) != 1:
            times = [h for h in candidates if h.lower() in TIME_NAMES]
            also = f" (and --time-column {times[0]} for the dates)" if time_column is None and len(times) == 1 else ""
            raise ForecastDataError(f"{path} has several columns ({columns}); choose one with --column{also}.")
        column = candidates[0]
    if column not in header:
        raise ForecastDataError(f"{path} has no column {column!r}; its columns are {columns}{hint}.")
    if column == time_column:
        raise ForecastDataError(f"--column and --time-column are both {column!r}; they must differ.")
    for name in (column, time_column):
        if name is not None and header.count(name) > 1:  # which of them is meant cannot be told
            raise ForecastDataError(f"{path} has {header.count(name)} columns named {name!r}; give each column a "
                                    "name of its own.")
    ci = header.index(column)
    ti = header.index(time_column) if time_column is not None else None
    values, stamps, stamp_lines = [], [], []
    for line, row in rows:  # blank lines (and rows of empty cells) skipped
        if len(row) <= max(ci, ti if ti is not None else -1):
            raise ForecastDataError(f"{path}, line {line}: the row has {len(row)} cells; column {column!r} is missing.")
        extra = [c.strip() for c in row[len(header):] if c.strip()]
        if extra:  # e.g. 1,234: its value would be read as 1
            hint = ("; write numbers without a thousands separator (1234, not 1,234)" if all(c.isdigit() for c in extra)
                    else f" (extra: {', '.join(repr(c) for c in extra[:3])}); remove the extra cells or quote them")
            raise ForecastDataError(f"{path}, line {line}: the row has {len(row)} cells but the header has "
                                    f"{len(header)}{hint}.")
        cell = row[ci].strip()
        if not cell:
            raise ForecastDataError(f"{path}, line {line}: column {column!r} is empty (fill in or remove the row).")
        try:
            if "_" in cell:  # Python reads 1_000 as 1000; a spreadsheet or a reader of the file would not
                raise ValueError(cell)
            v = float(cell)
        except ValueError:
            raise ForecastDataError(f"{path}, line {line}: column {column!r} holds {cell!r}, not a number.") from None
        if not math.isfinite(v):
            raise ForecastDataError(f"{path}, line {line}: column {column!r} holds {cell!r}, not a finite number "
                                    "(NaN and infinity are not allowed).")
        if abs(v) > MAX_ABS_VALUE:
            raise ForecastDataError(f"{path}, line {line}: column {column!r} holds {cell!r}, beyond "
                                    f"±{MAX_ABS_VALUE:g} (the model computes in 32-bit floats); rescale the column, "
                                    "e.g. to millions.")
        values.append(v)
        if ti is not None:
            stamps.append(row[ti].strip())
            stamp_lines.append(line)
    if not values:
        raise ForecastDataError(f"{path} has a header row but no data rows.")
    if ti is not None:
        _check_order(path, stamps, _check_times(path, time_column, stamps, stamp_lines))
    return Series(np.asarray(values, np.float64), column, stamps if ti is not None else None, source=path)


_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})")  # 2024-01: a month (ISO 8601's reduced precision)
_DECIMALS = re.compile(r"\.(\d+)")


def _parse_time(stamp: str):
    """One timestamp: a datetime (ISO 8601; ``YYYY-MM`` is that month's first day), else a finite float, else
    None."""
    m = _YEAR_MONTH.fullmatch(stamp)
    if m and 1 <= int(m.group(2)) <= 12:
        return datetime.datetime(int(m.group(1)), int(m.group(2)), 1)
    try:
        return datetime.datetime.fromisoformat(stamp)
    except (ValueError, TypeError):
        pass
    try:
        value = float(stamp) if "_" not in stamp else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_times(stamps: list):
    """The timestamps as datetimes, or all as floats; None when one is neither or they mix the two."""
    parsed = [_parse_time(s) for s in stamps]
    if any(p is None for p in parsed) or len({isinstance(p, datetime.datetime) for p in parsed}) > 1:
        return None
    return parsed


def _check_times(path: str, time_column: str, stamps: list, lines: list) -> list:
    """The timestamps read (:func:`_parse_time`). Every one must be read as the first one is, an ISO 8601
    date/time or a number: a US or day-first date (01/12/2024) or a typo (2024-13-01, n/a) would otherwise
    leave the column unchecked and unordered."""
    kind, out = None, []
    for stamp, line in zip(stamps, lines):
        parsed = _parse_time(stamp)
        out.append(parsed)
        this = None if parsed is None else isinstance(parsed, datetime.datetime)
        if this is not None and kind is None:
            kind = this
        if this is None or this != kind:
            what = "is empty" if not stamp else f"holds {stamp!r}"
            expected = {True: "an ISO date or time like the rows before it", False: "a number like the rows before it",
                        None: "an ISO 8601 date or time (2024-01-31, 2024-01-31T13:00, 2024-01) or a number"}[kind]
            raise ForecastDataError(f"{path}, line {line}: the time column {time_column!r} {what}, not {expected}. "
                                    "Write the times so, or leave out --time-column.")
    return out


def _check_order(path: str, stamps: list, parsed: list) -> None:
    """Timestamps (``parsed``, read from ``stamps``) must increase row by row."""
    try:
        for i in range(1, len(parsed)):
            if not parsed[i] > parsed[i - 1]:
                raise ForecastDataError(f"{path}: the time column is not increasing at data row {i + 1} "
                                        f"({stamps[i - 1]!r} then {stamps[i]!r}); sort the file by time.")
    except TypeError:  # naive and aware datetimes mixed
        raise ForecastDataError(f"{path}: the time column mixes timestamps with and without a time zone.") from None


def future_labels(stamps: Optional[list], horizon: int) -> Optional[list]:
    """The next ``horizon`` timestamps when ``stamps`` are regularly spaced (dates, datetimes or numbers), else None.

    Dates stay dates (``2024-01-31``); datetimes are written in ISO 8601; numbers keep integer form when the
    originals were integers. Timestamps past the year 9999 cannot be written: then None as well.
    """
    if not stamps or len(stamps) < 2:
        return None
    parsed = _parse_times(stamps)
    if parsed is None:
        return None
    # numbers written with d decimals (0.0, 0.1 ...): their steps compared, and the labels written, at d decimals
    decimals = max((len(m.group(1)) for m in map(_DECIMALS.search, stamps) if m), default=0) \
        if isinstance(parsed[0], float) else None
    if decimals is not None:
        parsed = [round(p, decimals) for p in parsed]
    steps = {parsed[i] - parsed[i - 1] if decimals is None else round(parsed[i] - parsed[i - 1], decimals)
             for i in range(1, len(parsed))}
    if len(steps) != 1:
        return _calendar_month_labels(parsed, stamps, horizon)
    step = steps.pop()
    last = parsed[-1]
    out = []
    for k in range(1, horizon + 1):
        try:
            t = last + step * k
        except OverflowError:  # past datetime's year 9999: a forecast without timestamps, not a traceback
            return None
        if isinstance(t, datetime.datetime):
            date_only = all(len(s) == 10 for s in stamps)
            if date_only:
                out.append(t.date().isoformat())
            else:
                spec = "minutes" if all(len(s) == 16 for s in stamps) else "auto"
                out.append(t.isoformat(sep="T" if "T" in stamps[-1] else " ", timespec=spec))
        else:
            out.append(f"{t:.{decimals}f}" if decimals or not float(t).is_integer() else str(int(t)))
    return out


def _month_end(year: int, month: int) -> int:
    return (datetime.date(year + month // 12, month % 12 + 1, 1) - datetime.timedelta(days=1)).day


def _calendar_month_labels(parsed: list, stamps: list, horizon: int) -> Optional[list]:
    """The next ``horizon`` labels of dates a whole number of months apart (monthly, quarterly, yearly data: their
    steps in days differ), on the same day of the month or all on month ends; else None."""
    if not all(isinstance(p, datetime.datetime) and p.time() == datetime.time() and p.tzinfo is None for p in parsed):
        return None
    months = [p.year * 12 + p.month - 1 for p in parsed]
    gaps = {b - a for a, b in zip(months, months[1:])}
    if len(gaps) != 1 or min(gaps) < 1:
        return None
    gap = gaps.pop()
    month_ends = all(p.day == _month_end(p.year, p.month) for p in parsed)
    days = {p.day for p in parsed}
    if not month_ends and (len(days) != 1 or max(days) > 28):
        return None
    year_month = all(len(s) == 7 for s in stamps)  # written 2024-01
    if not year_month and not all(len(s) == 10 for s in stamps):
        return None
    out = []
    for k in range(1, horizon + 1):
        y, m = divmod(months[-1] + gap * k, 12)
        if y > 9999:
            return None
        if year_month:
            out.append(f"{y:04d}-{m + 1:02d}")
        else:
            day = _month_end(y, m + 1) if month_ends else parsed[0].day
            out.append(datetime.date(y, m + 1, day).isoformat())
    return out


def irregular_times_note(stamps: Optional[list]) -> Optional[str]:
    """A note for a time column whose steps are not all equal (missing days, say), as the model reads the values
    as evenly spaced and the forecast then gets no timestamps; None when the steps are regular (or months)."""
    if not stamps or len(stamps) < 3 or future_labels(stamps, 1) is not None:
        return None
    parsed = _parse_times(stamps)
    if parsed is None:
        return None
    steps = [parsed[i] - parsed[i - 1] for i in range(1, len(parsed))]
    usual = max(set(steps), key=steps.count)
    i = next(i for i, d in enumerate(steps) if d != usual)
    return (f"the time column's steps are not all equal ({stamps[i]} to {stamps[i + 1]}, where most steps are "
            f"{usual}): the model reads the values as evenly spaced, and the forecast's steps are numbered, not "
            "dated. Fill in missing times (or resample) for a dated forecast.")


def format_value(v) -> str:
    """A forecast value in plain decimals, with the digits its float32 holds and no more: 1481953.2, not
    1.48195e+06 (six significant digits rounded sales of 1.3 million to tens), nor 1481953.25 (float64 noise)."""
    return np.format_float_positional(np.float32(v), trim="-")


def write_forecast_csv(path: str, forecast, labels: Optional[list], time_column: Optional[str], column: str) -> None:
    """Write ``step,<time_column>,<column>`` rows (the time column only with ``labels``; values as
    :func:`format_value` writes them)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step"] + ([time_column or "time"] if labels else []) + [column])
        for i, v in enumerate(np.asarray(forecast).ravel()):
            w.writerow([i + 1] + ([labels[i]] if labels else []) + [format_value(v)])


# ------------------------------------------------------------------------------------------------ demo


def demo_series(length: int = DEMO_LENGTH, season: int = DEMO_SEASON, seed: int = 0) -> Series:
    """A seeded hourly demo: level 20, slow upward trend, a daily cycle (two harmonics), AR(1) noise.

    Args:
        length: Number of values (positive).
        season: Length of the cycle in steps (at least 2).
        seed: NumPy seed; the same seed gives the same series.

    Returns:
        A :class:`Series` named ``demo`` with hourly timestamps from 2024-01-01T00:00.
    """
    if int(length) != length or length < 1:
        raise ValueError(f"length must be a positive integer; received {length!r}.")
    if int(season) != season or season < 2:
        raise ValueError(f"season must be an integer of at least 2; received {season!r}.")
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    phase = 2 * np.pi * t / season
    seasonal = 3.0 * np.sin(phase) + 1.2 * np.sin(2 * phase + 0.7)
    noise = np.zeros(length)
    eps = rng.normal(0.0, 0.45, size=length)
    for i in range(length):
        noise[i] = (0.6 * noise[i - 1] if i else 0.0) + eps[i]
    values = 20.0 + 0.01 * t + seasonal + noise
    start = datetime.datetime(2024, 1, 1)
    stamps = [(start + datetime.timedelta(hours=int(i))).isoformat(timespec="minutes") for i in range(length)]
    return Series(values, "demo", stamps, source="demo")


# ------------------------------------------------------------------------------------------------ windows


@dataclasses.dataclass(frozen=True)
class Split:
    """A chronological split: ``values[:split]`` trains, ``values[split:]`` is the back-test."""

    n: int
    split: int
    window: int
    horizon: int

    @property
    def train_origins(self) -> np.ndarray:
        """Forecast origins whose history and target lie inside the training part."""
        return np.arange(self.window, self.split - self.horizon + 1)

    @property
    def backtest_origins(self) -> np.ndarray:
        """Forecast origins inside the back-test (every one whose whole target is known)."""
        return np.arange(self.split, self.n - self.horizon + 1)


def backtest_length(n: int, horizon: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> int:
    """Values held out at the end: ``val_fraction`` of the series, and at least ``horizon``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1; received {val_fraction!r}.")
    return max(int(horizon), int(round(n * val_fraction)))


def make_split(n: int, window: int, horizon: int, val_fraction: float = DEFAULT_VAL_FRACTION) -> Split:
    """Split a series of ``n`` values for ``window``-step histories and ``horizon``-step targets.

    Raises:
        ForecastDataError: the series is too short for one training pair and a back-test of ``horizon`` values.
    """
    for name, v in (("window", window), ("horizon", horizon)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer; received {v!r}.")
    test = backtest_length(n, horizon, val_fraction)
    split = n - test
    if split - horizon + 1 <= window:
        need = window + horizon + max(horizon, int(math.ceil((window + horizon) * val_fraction / (1 - val_fraction))))
        raise ForecastDataError(
            f"The series has {n} values, too few for window {window} + horizon {horizon}: training needs "
            f"window + horizon = {window + horizon} values before a back-test of {test} ({val_fraction:g} of the "
            f"series, --val-fraction, and at least the horizon; about {need} values in all). Use a longer series or "
            "a smaller --window, --horizon or --val-fraction."
        )
    return Split(n=n, split=split, window=int(window), horizon=int(horizon))


def windows(values, origins, window: int, horizon: int):
    """``(X, Y)``: ``X[i] = values[o - window : o]`` and ``Y[i] = values[o : o + horizon]`` for each origin ``o``."""
    values = np.asarray(values)
    origins = np.asarray(origins, dtype=np.int64)
    if origins.size and (origins.min() < window or origins.max() + horizon > len(values)):
        raise ValueError(f"origins must lie in [{window}, {len(values) - horizon}]; received {origins.min()}..{origins.max()}.")
    x = values[origins[:, None] + np.arange(-window, 0)[None, :]]
    y = values[origins[:, None] + np.arange(horizon)[None, :]]
    return x, y


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """``(x - level) / scale``: ``level`` the mean of each history window, ``scale`` the training part's std."""

    scale: float

    @classmethod
    def fit(cls, train_values) -> "Normalizer":
        """Statistics of the training part only (a constant series gets scale 1)."""
        std = float(np.std(np.asarray(train_values, np.float64)))
        return cls(scale=std if std > 1e-12 else 1.0)

    def level(self, history) -> np.ndarray:
        return np.asarray(history, np.float64).mean(axis=-1, keepdims=True)

    def encode(self, history, target=None):
        """Normalised history (and target, with the history's level)."""
        level = self.level(history)
        x = (np.asarray(history, np.float64) - level) / self.scale
        if target is None:
            return x
        return x, (np.asarray(target, np.float64) - level) / self.scale

    def decode(self, history, y) -> np.ndarray:
        """Back to the series' units, with the level of ``history``."""
        return np.asarray(y, np.float64) * self.scale + self.level(history)
