"""Length units found in microscope files, converted to nanometres; reciprocal and angular units recognised.

Files spell units many ways: ``nm``, ``µm`` (micro sign), ``μm`` (Greek mu), ``um``, ``micron``, ``Å``/``A``,
``pm``, Berkeley EMD's ``n_m``, bracketed ``[nm]``. Anything else is treated as "no usable calibration" rather than
guessed, because a wrong pixel size silently breaks every downstream size and resampling step.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

UnitKind = Literal["length", "reciprocal", "angle", "none", "unknown"]

# nanometres per unit, keyed on the normalised spelling (see _normalise)
NM_PER_UNIT: dict[str, float] = {
    "m": 1e9,
    "cm": 1e7,
    "mm": 1e6,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "a": 0.1,
    "ang": 0.1,
    "angstrom": 0.1,
    "angstroms": 0.1,
    "pm": 1e-3,
}

# Angles mean a diffraction pattern (or a tilt axis): not real space.
ANGLE_UNITS = {"rad", "mrad", "urad", "deg", "degree", "degrees"}

# Spellings that mean "the file has no calibration" (HyperSpy's Undefined prints as <undefined>).
EMPTY_UNITS = {"", "px", "pixel", "pixels", "<undefined>", "undefined", "none", "1"}


def _normalise(units: object) -> str:
    s = "" if units is None else str(units)
    s = s.strip().strip("[]()").strip()
    # micro sign (U+00B5) and Greek mu (U+03BC) -> u; Angstrom sign (U+212B) and A-ring (U+00C5) -> a
    s = s.replace("\u00b5", "u").replace("\u03bc", "u").replace("\u212b", "a").replace("\u00c5", "a")
    s = s.replace("_", "").replace(" ", "")  # Berkeley EMD writes n_m, u_m
    return s.lower()


def unit_kind(units: object) -> UnitKind:
    """Classify an axis unit: a length, a reciprocal length (diffraction/FFT), an angle, empty, or unknown."""
    s = _normalise(units)
    if s in EMPTY_UNITS:
        return "none"
    if s in NM_PER_UNIT:
        return "length"
    if s in ANGLE_UNITS:
        return "angle"
    if s.startswith("1/") and s[2:] in NM_PER_UNIT:
        return "reciprocal"
    for suffix in ("^-1", "-1", "**-1"):
        if s.endswith(suffix) and s[: -len(suffix)] in NM_PER_UNIT:
            return "reciprocal"
    return "unknown"


def to_nm(scale: float, units: object) -> float | None:
    """``scale`` in ``units`` as nanometres, or None when the unit is not a length or the scale is unusable."""
    if unit_kind(units) != "length":
        return None
    try:
        v = float(scale) * NM_PER_UNIT[_normalise(units)]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def to_per_nm(scale: float, units: object) -> float | None:
    """A reciprocal-space scale (e.g. ``0.17 1/nm``) as 1/nm, or None."""
    if unit_kind(units) != "reciprocal":
        return None
    s = _normalise(units)
    base = s[2:] if s.startswith("1/") else s.split("^")[0].split("**")[0].removesuffix("-1")
    try:
        v = float(scale) / NM_PER_UNIT[base]
    except (TypeError, ValueError, KeyError):
        return None
    return v if math.isfinite(v) and v > 0 else None


# Plausible pixel sizes: 0.1 pm (beyond any microscope) to 1 mm (an optical overview); outside is a typo or a unit slip.
PIXEL_SIZE_RANGE_NM = (1e-4, 1e6)


def check_pixel_size(value: object, what: str = "pixel size") -> float:
    """``value`` as a pixel size in nm (finite, > 0, within :data:`PIXEL_SIZE_RANGE_NM`), else a one-line DataError.

    The one check for every pixel size a person types: CLI ``--pixel-size-nm``, the Load page field, TrainConfig.
    """
    from temzoo.errors import DataError

    try:
        if isinstance(value, bool):  # float(True) is 1.0: a JSON true is not a pixel size
            raise TypeError
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{what} must be a number of nm per pixel, got {value!r}") from None
    lo, hi = PIXEL_SIZE_RANGE_NM
    if not math.isfinite(v) or v <= 0:
        raise DataError(f"{what} must be a positive number of nm per pixel, got {value!r}")
    if not lo <= v <= hi:
        raise DataError(f"{what} {v:g} nm is outside {lo:g}..{hi:g} nm per pixel; check the unit (nm, not pm or um)")
    return v


def format_nm(value: float | None, unit: str = "nm/px") -> str:
    """Short, honest display of a pixel size: the fewest significant digits (3 or more) within 0.1 %.

    ``1.2490`` -> ``1.25 nm/px``, ``0.0177516`` -> ``0.01775 nm/px``; ``None`` -> ``uncalibrated``.
    """
    if value is None:
        return "uncalibrated"
    for digits in range(3, 8):
        rounded = float(f"{value:.{digits}g}")
        if abs(rounded - value) <= 1e-3 * abs(value):
            break
    # positional, never 1.8e+04: readers of a scale bar should not have to decode exponents
    s = np.format_float_positional(rounded, trim="-")
    return f"{s} {unit}".strip()


def format_length(nm: float) -> str:
    """A length for labels (scale bars, fields of view): pm, nm or µm with a sensible number of digits."""
    if nm >= 1000:
        return f"{nm / 1000:.3g} µm"
    if nm < 0.1:
        return f"{nm * 1000:.3g} pm"
    return f"{nm:.3g} nm"
