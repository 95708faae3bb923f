"""Exit waves by abTEM multislice, computed once per field and cached on disk.

Two runs per field: the particles on carbon (what the microscope images) and the particles alone in vacuum (what the
label is made of, as in Rangel DaCosta et al.). Both are kept in an ``.npz`` keyed by a hash of the field spec, the
sampling, the energy and the code version, so repeated runs and every defocus/dose variant reuse them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from temzoo.simulate.structures import FieldSpec, build_field

# Bump when the physics or the structure builder changes: old cache entries then stop matching.
CACHE_VERSION = 2
SLICE_THICKNESS_A = 2.0


@dataclass
class ExitWaves:
    """``field``: exit wave of particles on carbon; ``particle``: exit wave of the particles alone (complex64)."""

    field: np.ndarray
    particle: np.ndarray
    sampling_A: float
    energy_eV: float
    spec: FieldSpec
    from_cache: bool = False
    seconds: float = 0.0
    key: str = ""


def default_cache_dir() -> Path:
    from temzoo.paths import home

    return home() / "cache" / "exitwaves"


def cache_key(spec: FieldSpec, sampling_A: float, energy_eV: float) -> str:
    payload = {"spec": spec.to_dict(), "sampling_A": round(float(sampling_A), 8), "energy_eV": float(energy_eV),
               "slice_A": SLICE_THICKNESS_A, "version": CACHE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _multislice(atoms, gpts: int, energy_eV: float) -> np.ndarray:
    import abtem

    if len(atoms) == 0:
        return np.ones((gpts, gpts), dtype=np.complex64)
    with abtem.config.set({"diagnostics.task_progress": False, "diagnostics.progress_bar": False}):
        potential = abtem.Potential(atoms, gpts=gpts, slice_thickness=SLICE_THICKNESS_A, projection="infinite",
                                    parametrization="lobato")
        waves = abtem.PlaneWave(energy=energy_eV).multislice(potential)
        # abTEM indexes arrays (x, y); images are (row = y, column = x)
        return np.ascontiguousarray(np.asarray(waves.compute(scheduler="synchronous").array, dtype=np.complex64).T)


def compute_exit_waves(spec: FieldSpec, sampling_A: float, energy_eV: float = 300e3,
                       cache_dir: str | Path | None = None, use_cache: bool = True) -> ExitWaves:
    """Exit waves of a field on a square grid of ``extent / sampling_A`` points, from the cache when present."""
    extent_A = spec.extent_nm * 10
    gpts = int(round(extent_A / sampling_A))
    key = cache_key(spec, sampling_A, energy_eV)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{key}.npz"
    if use_cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return ExitWaves(z["field"], z["particle"], float(z["sampling_A"]), float(z["energy_eV"]), spec,
                                 from_cache=True, key=key)
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is recomputed and overwritten
    t0 = time.perf_counter()
    full, alone = build_field(spec)
    field = _multislice(full, gpts, energy_eV)
    particle = _multislice(alone, gpts, energy_eV)
    seconds = time.perf_counter() - t0
    ew = ExitWaves(field, particle, extent_A / gpts, float(energy_eV), spec, from_cache=False, seconds=seconds, key=key)
    if use_cache:
        cache.mkdir(parents=True, exist_ok=True)
        # write-then-rename: concurrent runs never read a half-written entry
        fd, tmp = tempfile.mkstemp(suffix=".npz", dir=cache)
        os.close(fd)
        np.savez(tmp, field=field, particle=particle, sampling_A=ew.sampling_A, energy_eV=ew.energy_eV,
                 spec=json.dumps(spec.to_dict()))
        os.replace(tmp, path)
    return ew
