"""Labelled simulated HRTEM sets on disk: ``images/`` (float32 TIFF counts), ``masks/`` (PNG 0/255), ``metadata/``.

Image ``k`` belongs to field ``k // variants_per_field``; each field's exit waves are computed once (and cached),
each image draws its own defocus and dose. Seeds derive from ``(seed, field)`` and ``(seed, image)``, so the first
``n`` images are the same whatever the total, and a rerun reproduces the set bit for bit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from temzoo.errors import DataError
from temzoo.simulate.structures import DEFAULT_MATERIALS, MATERIALS, FieldSpec, random_field


@dataclass
class SimulationConfig:
    n: int = 16
    materials: tuple[str, ...] = DEFAULT_MATERIALS
    dose_range: tuple[float, float] = (30.0, 1000.0)  # e/A^2, drawn log-uniformly
    dose_values: tuple[float, ...] | None = None  # if set: drawn from these instead
    defocus_range: tuple[float, float] = (-25.0, 25.0)  # nm, uniform (abTEM sign: positive = underfocus)
    defocus_values: tuple[float, ...] | None = None
    seed: int = 0
    pixel_size_nm: float = 0.05
    size_px: int = 256
    oversample: int = 2  # multislice sampling = pixel size / oversample
    energy_kv: float = 300.0
    cs_mm: float = 0.02
    focal_spread_nm: float = 1.0
    aperture_mrad: float | None = None
    blur_px: float = 0.0  # detector blur (Gaussian sigma, detector pixels)
    label_threshold_rad: float = math.pi / 32  # on the particle exit-wave phase (see labels.py; paper: pi/16)
    variants_per_field: int = 4
    n_particles: tuple[int, int] = (1, 5)
    diameter_nm: tuple[float, float] = (2.0, 10.0)
    carbon_nm: tuple[float, float] = (2.0, 8.0)
    max_stacking_faults: int = 1
    image_format: str = "tif"  # or "png" (16-bit counts)
    write_clean: bool = False  # also write noise-free images in clean/ (denoising targets)
    cache_dir: str | None = None
    use_cache: bool = True

    def validate(self) -> None:
        from temzoo.validate import number, seed, span

        number(self.n, "--n", 1, 1_000_000, integer=True)
        self.seed = seed(self.seed, "--seed")
        number(self.pixel_size_nm, "--pixel-size-nm", 0, 0.5, lo_open=True)
        number(self.size_px, "--size", 32, 4096, integer=True)
        number(self.energy_kv, "--voltage-kv", 1, 10_000)
        number(self.cs_mm, "--cs-mm", -100, 100)
        number(self.focal_spread_nm, "--focal-spread-nm", 0, 1000)
        number(self.blur_px, "--blur-px", 0, 100)
        number(self.label_threshold_rad, "--label-threshold", 0, 2 * math.pi, lo_open=True)
        number(self.variants_per_field, "--variants", 1, 1000, integer=True)
        number(self.oversample, "oversample", 1, 16, integer=True)
        number(self.max_stacking_faults, "max stacking faults", 0, 100, integer=True)
        if self.aperture_mrad is not None:
            number(self.aperture_mrad, "aperture (mrad)", 0, 1000, lo_open=True)
        for v in self.dose_values or self.dose_range:
            number(v, "--dose", 0, 1e9, lo_open=True)
        if self.dose_values is None:
            span(self.dose_range, "--dose", 0, 1e9, lo_open=True)
        for v in self.defocus_values or self.defocus_range:
            number(v, "--defocus", -10_000, 10_000)
        if self.defocus_values is None:
            span(self.defocus_range, "--defocus", -10_000, 10_000)
        self.n_particles = span(self.n_particles, "--particles", 1, 1000, integer=True)
        self.diameter_nm = span(self.diameter_nm, "--diameter-nm", 0, 1000, lo_open=True)
        self.carbon_nm = span(self.carbon_nm, "--carbon-nm", 0, 1000)
        for m in self.materials:
            if m not in MATERIALS:
                raise DataError(f"unknown material {m!r}; choose from {', '.join(MATERIALS)}")
        if self.image_format not in ("tif", "png"):
            raise DataError(f"image format must be 'tif' or 'png', got {self.image_format!r}")

    @property
    def extent_nm(self) -> float:
        return self.size_px * self.pixel_size_nm

    @property
    def sampling_A(self) -> float:
        return self.pixel_size_nm * 10 / self.oversample

    def optics(self):
        from temzoo.simulate.imaging import Optics

        return Optics(energy_eV=self.energy_kv * 1e3, cs_mm=self.cs_mm, focal_spread_nm=self.focal_spread_nm,
                      aperture_mrad=self.aperture_mrad)

    def to_dict(self) -> dict:
        return asdict(self)


def field_spec(config: SimulationConfig, index: int) -> FieldSpec:
    rng = np.random.default_rng([config.seed, 0, index])
    return random_field(rng, config.extent_nm, materials=config.materials, n_particles=config.n_particles,
                        diameter_nm=config.diameter_nm, carbon_nm=config.carbon_nm,
                        max_stacking_faults=config.max_stacking_faults)


def draw_conditions(config: SimulationConfig, image_index: int) -> tuple[float, float, np.random.Generator]:
    """``(defocus_nm, dose, rng)`` of one image; the rng then draws its Poisson noise."""
    rng = np.random.default_rng([config.seed, 1, image_index])
    if config.defocus_values:
        defocus = float(rng.choice(config.defocus_values))
    else:
        defocus = float(rng.uniform(*config.defocus_range))
    if config.dose_values:
        dose = float(rng.choice(config.dose_values))
    else:
        lo, hi = config.dose_range
        dose = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return round(defocus, 3), round(dose, 3), rng


def _write_image(path: Path, img: np.ndarray, pixel_size_nm: float, fmt: str) -> Path:
    if fmt == "png":
        from PIL import Image

        path = path.with_suffix(".png")
        Image.fromarray(np.clip(np.rint(img), 0, 65535).astype(np.uint16)).save(path)
    else:
        from rsciio.tiff import file_writer

        path = path.with_suffix(".tif")
        # RosettaSciIO's writer stores scale + unit the way its reader (and so temzoo.io) reads them back
        axes = [{"name": n, "size": s, "scale": pixel_size_nm, "offset": 0.0, "units": "nm", "navigate": False}
                for n, s in zip(("y", "x"), img.shape)]
        file_writer(str(path), {"data": img.astype(np.float32), "axes": axes, "metadata": {}, "original_metadata": {}})
    return path


def generate(config: SimulationConfig, out: str | Path,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``config.n`` labelled images to ``out``; returns a summary (counts, cache hits, seconds)."""
    from PIL import Image

    from temzoo.simulate.imaging import apply_dose, expected_intensity
    from temzoo.simulate.labels import mask_from_particle_wave
    from temzoo.simulate.multislice import compute_exit_waves

    config.validate()
    out = Path(out)
    dirs = {d: out / d for d in ("images", "masks", "metadata")}
    if config.write_clean:
        dirs["clean"] = out / "clean"
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    optics = config.optics()
    t0 = time.perf_counter()
    n_fields = math.ceil(config.n / config.variants_per_field)
    computed = cached = 0
    multislice_s = 0.0
    width = max(5, len(str(config.n - 1)))
    for f in range(n_fields):
        spec = field_spec(config, f)
        ew = compute_exit_waves(spec, config.sampling_A, optics.energy_eV, cache_dir=config.cache_dir,
                                use_cache=config.use_cache)
        cached += ew.from_cache
        computed += not ew.from_cache
        multislice_s += ew.seconds
        mask = mask_from_particle_wave(ew.particle, sampling_A=ew.sampling_A, pixel_size_nm=config.pixel_size_nm,
                                      threshold=config.label_threshold_rad)
        for v in range(config.variants_per_field):
            k = f * config.variants_per_field + v
            if k >= config.n:
                break
            defocus, dose, rng = draw_conditions(config, k)
            intensity = expected_intensity(ew.field, defocus, sampling_A=ew.sampling_A,
                                           pixel_size_nm=config.pixel_size_nm, optics=optics)
            img = apply_dose(intensity, dose, config.pixel_size_nm, rng=rng, blur_px=config.blur_px)
            stem = f"{k:0{width}d}"
            img_path = _write_image(dirs["images"] / stem, img, config.pixel_size_nm, config.image_format)
            Image.fromarray((mask * 255).astype(np.uint8)).save(dirs["masks"] / f"{stem}.png")
            if config.write_clean:
                clean = apply_dose(intensity, None, config.pixel_size_nm) * dose
                _write_image(dirs["clean"] / stem, clean, config.pixel_size_nm, config.image_format)
            meta = {
                "image": f"images/{img_path.name}", "mask": f"masks/{stem}.png",
                "materials": sorted({p.material for p in spec.particles}),
                "particles": [{"material": p.material, "diameter_nm": p.diameter_nm,
                               "stacking_faults": p.stacking_faults, "center_nm": list(p.center_nm)}
                              for p in spec.particles],
                "carbon_thickness_nm": spec.carbon_thickness_nm, "defocus_nm": defocus, "dose_e_per_A2": dose,
                "pixel_size_nm": config.pixel_size_nm, "size_px": config.size_px, "seed": config.seed,
                "field_index": f, "variant": v, "field_seed": spec.seed, "energy_kv": config.energy_kv,
                "cs_mm": config.cs_mm, "focal_spread_nm": config.focal_spread_nm,
                "aperture_mrad": config.aperture_mrad, "blur_px": config.blur_px,
                "multislice_sampling_A": ew.sampling_A, "exit_wave_key": ew.key,
                "label": f"particle-in-vacuum exit-wave phase (blurred 1.3 A) > {config.label_threshold_rad:.4f} rad",
                "foreground_fraction": round(float(mask.mean()), 5), "units": "electron counts per pixel",
            }
            (dirs["metadata"] / f"{stem}.json").write_text(json.dumps(meta, indent=1))
            if progress:
                progress(k + 1, config.n)
    summary = {"n_images": config.n, "n_fields": n_fields, "exit_waves_computed": computed,
               "exit_waves_cached": cached, "multislice_seconds": round(multislice_s, 2),
               "seconds": round(time.perf_counter() - t0, 2), "config": config.to_dict()}
    (out / "simulation.json").write_text(json.dumps(summary, indent=1))
    return summary


def example_exit_waves(material: str = "Au", diameter_nm: float = 4.0, *, size_px: int = 256,
                       pixel_size_nm: float = 0.05, carbon_nm: float = 3.0, seed: int = 0,
                       cache_dir: str | None = None):
    """One particle of ``material`` on carbon, for teaching: ``(config, exit_waves)``; re-image the field with
    :func:`temzoo.simulate.image_from_exit_wave` at any defocus/dose in milliseconds (cached after the first call)."""
    from temzoo.simulate.multislice import compute_exit_waves

    cfg = SimulationConfig(materials=(material,), size_px=size_px, pixel_size_nm=pixel_size_nm,
                           diameter_nm=(diameter_nm, diameter_nm), carbon_nm=(carbon_nm, carbon_nm),
                           n_particles=(1, 1), seed=seed, cache_dir=cache_dir)
    cfg.validate()
    return cfg, compute_exit_waves(field_spec(cfg, 0), cfg.sampling_A, cfg.energy_kv * 1e3, cache_dir=cache_dir)


# The simulated HRTEM test set's imaging conditions (recipe a, the pretraining study and bench_transfer score on it):
# a dose series at -10 nm and a defocus series at 300 e/A^2, 8 unseen fields of seed TEST_SEED each.
TEST_DOSES = (30.0, 100.0, 300.0, 1000.0)
TEST_DEFOCI = (-20.0, -10.0, 0.0, 10.0, 20.0)
TEST_SEED = 1000


def sim_test_conditions() -> list[tuple[float, float]]:
    """(dose, defocus) pairs of the simulated test set."""
    pairs = [(d, -10.0) for d in TEST_DOSES] + [(300.0, f) for f in TEST_DEFOCI if f != -10.0]
    return sorted(set(pairs), key=lambda p: (p[0], p[1]))
