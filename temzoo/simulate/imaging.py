"""From an exit wave to a recorded image: objective lens (CTF), detector sampling, dose (Poisson) and blur.

Milliseconds per image (two FFTs of the exit wave and a Poisson draw), so one multislice run gives many
defocus/dose variants and the teaching page can re-image interactively. The transfer function follows abTEM's
conventions (``defocus = -C10``, positive = underfocus; focal spread as the 1/e width, Kirkland) and is checked
against ``abtem.CTF`` in the tests; it is evaluated here with NumPy because abTEM's lazy (dask) path costs ~100x more
per call than the arithmetic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from temzoo.errors import DataError


@dataclass(frozen=True)
class Optics:
    """Microscope settings that do not vary per variant (defaults: aberration-corrected 300 kV HRTEM)."""

    energy_eV: float = 300e3
    cs_mm: float = 0.02
    focal_spread_nm: float = 1.0  # 1/e width, as in the paper (10 A)
    aperture_mrad: float | None = None  # objective aperture semi-angle; None = no aperture

    def to_dict(self) -> dict:
        return asdict(self)


def wavelength_A(energy_eV: float) -> float:
    """Relativistic electron wavelength [A]."""
    from abtem.core.energy import energy2wavelength

    return float(energy2wavelength(energy_eV))


@lru_cache(maxsize=64)
def _k2(n: int, sampling_A: float) -> np.ndarray:
    k = np.fft.fftfreq(n, d=sampling_A)
    return (k[:, None] ** 2 + k[None, :] ** 2).astype(np.float32)


@lru_cache(maxsize=256)
def ctf_kernel(n: int, sampling_A: float, defocus_A: float, optics: Optics = Optics()) -> np.ndarray:
    """Coherent transfer function with temporal envelope on an ``n x n`` FFT grid (complex64, cached)."""
    lam = wavelength_A(optics.energy_eV)
    k2 = _k2(n, float(sampling_A))
    cs_A = optics.cs_mm * 1e7
    # abTEM: chi = 2 pi / lambda * (C10 alpha^2 / 2 + C30 alpha^4 / 4), alpha = lambda k, C10 = -defocus
    # float32 throughout: chi stays below ~1e3 rad on HRTEM grids, so the phase error is < 1e-3 rad
    chi = np.float32(np.pi * lam * -defocus_A) * k2 + np.float32(0.5 * np.pi * cs_A * lam**3) * k2 * k2
    envelope = np.exp(np.float32(-((0.5 * np.pi * lam * optics.focal_spread_nm * 10) ** 2)) * k2 * k2)
    h = np.empty(k2.shape, dtype=np.complex64)
    h.real = envelope * np.cos(chi)
    h.imag = -envelope * np.sin(chi)
    if optics.aperture_mrad:
        h *= np.sqrt(k2) * lam <= optics.aperture_mrad * 1e-3
    return h


def _bin(img: np.ndarray, factor: float) -> np.ndarray:
    """Area-average down to the detector grid (integer factor) or antialiased resize otherwise."""
    f = int(round(factor))
    if abs(factor - f) < 1e-6:
        if f == 1:
            return img
        n = img.shape[0] // f * f
        return img[:n, :n].reshape(n // f, f, n // f, f).mean(axis=(1, 3))
    from temzoo.preprocess import resample

    return resample(img.astype(np.float32), 1.0 / factor)


def expected_intensity(exit_wave: np.ndarray, defocus_nm: float, *, sampling_A: float, pixel_size_nm: float,
                       optics: Optics = Optics()) -> np.ndarray:
    """Noise-free image intensity at the detector's pixel size (vacuum = 1)."""
    import scipy.fft

    psi = np.asarray(exit_wave)
    if psi.ndim != 2 or psi.shape[0] != psi.shape[1]:
        raise DataError(f"exit wave must be a square 2D array, got shape {psi.shape}")
    h = ctf_kernel(psi.shape[0], float(sampling_A), float(defocus_nm) * 10, optics)
    img = scipy.fft.ifft2(scipy.fft.fft2(psi.astype(np.complex64)) * h)
    intensity = (img.real**2 + img.imag**2).astype(np.float32)
    return _bin(intensity, pixel_size_nm * 10 / sampling_A).astype(np.float32)


def apply_dose(intensity: np.ndarray, dose_e_per_A2: float | None, pixel_size_nm: float,
               rng: np.random.Generator | int | None = None, blur_px: float = 0.0) -> np.ndarray:
    """Electron counts per pixel: Poisson with mean ``intensity * dose * pixel area``; then the detector blur.

    ``dose=None`` gives the noise-free expected counts at a nominal 1 e/A^2 (a clean target for denoising).
    """
    area = (pixel_size_nm * 10) ** 2
    if dose_e_per_A2 is None:
        counts = np.asarray(intensity, dtype=np.float32) * area
    else:
        if not dose_e_per_A2 > 0:
            raise DataError(f"dose must be > 0 e/A^2, got {dose_e_per_A2}")
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        lam = np.clip(np.asarray(intensity, dtype=np.float64), 0, None) * dose_e_per_A2 * area
        counts = rng.poisson(lam).astype(np.float32)
    if blur_px and blur_px > 0:
        from scipy.ndimage import gaussian_filter

        counts = gaussian_filter(counts, blur_px, mode="wrap").astype(np.float32)
    return counts


def image_from_exit_wave(exit_wave: np.ndarray, defocus_nm: float, dose_e_per_A2: float | None, *,
                         sampling_A: float, pixel_size_nm: float, optics: Optics = Optics(), blur_px: float = 0.0,
                         rng: np.random.Generator | int | None = None) -> np.ndarray:
    """One recorded image (float32 electron counts) from a cached exit wave: CTF at ``defocus_nm`` -> |.|^2 ->
    detector pixels -> Poisson at ``dose_e_per_A2`` -> blur. Milliseconds for a 512^2 wave."""
    intensity = expected_intensity(exit_wave, defocus_nm, sampling_A=sampling_A, pixel_size_nm=pixel_size_nm,
                                   optics=optics)
    return apply_dose(intensity, dose_e_per_A2, pixel_size_nm, rng=rng, blur_px=blur_px)
