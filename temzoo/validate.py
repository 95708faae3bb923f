"""Argument validators: the one place that says which numbers temzoo accepts (issue #12, class 5).

Each check names the argument and the allowed range in one line, and refuses NaN and infinities outright, so no
non-finite number reaches a config, a job folder or a checkpoint. The same checks serve argparse (``arg_*``
factories: a usage error, exit 2) and the config dataclasses' ``validate()`` (a :class:`DataError`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from temzoo.errors import DataError

SEED_MAX = 2**32 - 1  # NumPy's legacy seeding and torch.manual_seed both accept 0 .. 2**32 - 1 everywhere


def number(value: Any, name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           integer: bool = False) -> float | int:
    """``value`` as a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), else a one-line DataError."""
    what = "a whole number" if integer else "a number"
    if isinstance(value, bool):
        raise DataError(f"{name} must be {what}{_range(lo, hi, lo_open)}, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{name} must be {what}{_range(lo, hi, lo_open)}, got {_show(value)}") from None
    if not math.isfinite(v):
        raise DataError(f"{name} must be a finite number{_range(lo, hi, lo_open)}, got {_show(value)}")
    if integer:
        if v != int(v) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit()):
            raise DataError(f"{name} must be a whole number{_range(lo, hi, lo_open)}, got {_show(value)}")
        v = int(value) if not isinstance(value, float) else int(v)
    if (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi):
        raise DataError(f"{name} must be{_range(lo, hi, lo_open)}, got {_show(value)}")
    return v


def seed(value: Any, name: str = "seed") -> int:
    """A random seed every generator accepts (0 .. 2**32 - 1)."""
    return int(number(value, name, 0, SEED_MAX, integer=True))


def switch(value: Any, name: str) -> bool:
    """``value`` as an on/off setting: only ``True`` or ``False`` (a hand-edited ``"yes"``, ``1`` or ``null`` is no
    switch), else a one-line DataError."""
    if not isinstance(value, bool):
        raise DataError(f"{name} must be true or false, got {_show(value)}")
    return value


def span(values: Any, name: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
         integer: bool = False, nonempty: bool = False) -> tuple:
    """A ``(LO, HI)`` range: both ends checked as :func:`number`, ``LO <= HI`` (``LO < HI`` with ``nonempty``)."""
    a, b = (number(v, name, lo, hi, lo_open=lo_open, integer=integer) for v in values)
    if b < a or (nonempty and b == a and not integer):
        raise DataError(f"{name} range {a:g}:{b:g} is empty; give LO:HI with LO < HI (or one value)")
    return a, b


def _range(lo: float | None, hi: float | None, lo_open: bool) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" {'>' if lo_open else '>='} {_num(lo)}"
    if lo is None:
        return f" <= {_num(hi)}"
    return f" in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}]"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else f"{x:g}"


def _show(value: Any) -> str:
    s = repr(value) if isinstance(value, str) else str(value)
    return s if len(s) <= 40 else s[:37] + "..."


# --------------------------------------------------------------------------------------------------- argparse types


def arg_number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
               integer: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type``: the value checked by :func:`number`; a bad one is a usage error naming the option."""
    def parse(text: str) -> float | int:
        try:
            return number(text, "value", lo, hi, lo_open=lo_open, integer=integer)
        except DataError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value ")) from None

    parse.__name__ = "integer" if integer else "number"
    return parse


def arg_seed(text: str) -> int:
    """argparse ``type`` for ``--seed``."""
    try:
        return seed(text, "value")
    except DataError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("value ")) from None
