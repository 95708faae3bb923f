"""temzoo.simulate: structures, abTEM exit waves + cache, imaging physics (CTF, Poisson dose), labels, data sets.

Tiny cells (128 px at 0.05 nm/px = 6.4 nm, one 2-3 nm particle on 2 nm carbon): each multislice run takes a fraction
of a second after abTEM's one-off warm-up.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from temzoo.errors import DataError
from temzoo.simulate import (
    Optics,
    SimulationConfig,
    apply_dose,
    compute_exit_waves,
    expected_intensity,
    field_spec,
    generate,
    image_from_exit_wave,
    mask_from_particle_wave,
)
from temzoo.simulate.structures import ParticleSpec, build_particle, random_field, stacking_sequence


def tiny_config(**kw) -> SimulationConfig:
    base = dict(n=4, size_px=128, pixel_size_nm=0.05, diameter_nm=(2.5, 3.0), carbon_nm=(2.0, 2.0),
                n_particles=(1, 1), variants_per_field=4, seed=3)
    base.update(kw)
    return SimulationConfig(**base)


@pytest.fixture(scope="module")
def tiny_waves(tmp_path_factory):
    cfg = tiny_config(materials=("Au",))
    spec = field_spec(cfg, 0)
    return cfg, compute_exit_waves(spec, cfg.sampling_A, cache_dir=tmp_path_factory.mktemp("cache"))


# --- structures -------------------------------------------------------------------------------------------------

def test_stacking_sequences():
    rng = np.random.default_rng(0)
    assert stacking_sequence("fcc", 7, 0, rng) == [0, 1, 2, 0, 1, 2, 0]
    assert stacking_sequence("wurtzite", 6, 0, rng) == [0, 1, 0, 1, 0, 1]
    faulted = stacking_sequence("wurtzite", 12, 1, np.random.default_rng(1))
    # exactly one cubic (three different sites in a row) triple = one basal stacking fault
    triples = sum(len({*faulted[i:i + 3]}) == 3 for i in range(len(faulted) - 2))
    assert triples == 1
    assert all(a != b for a, b in zip(faulted, faulted[1:]))  # never two layers on the same site


@pytest.mark.parametrize("material", ["Au", "CdSe", "ZnS"])
def test_particle_size_and_species(material):
    p = ParticleSpec(material, 3.0, (0.0, 0.0), (0.0, 0.0, 0.0, 1.0), 1 if material == "CdSe" else 0)
    atoms = build_particle(p, np.random.default_rng(0))
    extent_nm = np.ptp(atoms.positions, axis=0).max() / 10
    assert 2.4 < extent_nm < 3.4
    symbols = set(atoms.get_chemical_symbols())
    assert symbols == {"Au"} if material == "Au" else len(symbols) == 2


def test_random_field_particles_do_not_overlap():
    spec = random_field(np.random.default_rng(5), 12.8, n_particles=(5, 5), diameter_nm=(2, 3))
    assert 1 <= len(spec.particles) <= 5
    for i, a in enumerate(spec.particles):
        r = a.diameter_nm / 2
        assert r <= a.center_nm[0] <= 12.8 - r and r <= a.center_nm[1] <= 12.8 - r
        for b in spec.particles[i + 1:]:
            assert np.hypot(a.center_nm[0] - b.center_nm[0], a.center_nm[1] - b.center_nm[1]) > r + b.diameter_nm / 2


# --- imaging physics ------------------------------------------------------------------------------------------

def test_ctf_matches_abtem():
    """Our NumPy transfer function gives the same image wave as abTEM's own CTF (sign, units, envelope)."""
    import abtem
    import scipy.fft

    from temzoo.simulate.imaging import ctf_kernel

    psi = np.exp(1j * np.random.default_rng(0).normal(scale=0.3, size=(64, 64))).astype(np.complex64)
    optics = Optics(cs_mm=0.5, focal_spread_nm=2.0)
    ref = abtem.Waves(psi, energy=300e3, sampling=0.25).apply_ctf(
        abtem.CTF(defocus=150.0, Cs=0.5e7, focal_spread=20.0, energy=300e3)).compute().array
    ours = scipy.fft.ifft2(scipy.fft.fft2(psi) * ctf_kernel(64, 0.25, 150.0, optics))
    assert np.abs(ref - ours).max() < 1e-4
    assert np.abs(ours - psi).max() > 0.1  # the lens did something


def test_noise_is_poisson_with_the_dose():
    """Vacuum (exit wave 1): counts have mean = dose x pixel area and variance = mean."""
    ones = np.ones((256, 256), dtype=np.complex64)
    intensity = expected_intensity(ones, 10.0, sampling_A=0.25, pixel_size_nm=0.05)
    assert np.allclose(intensity, 1.0, atol=1e-5)
    for dose in (30.0, 1000.0):
        counts = apply_dose(intensity, dose, 0.05, rng=0)
        expected = dose * 0.25  # 0.5 A pixels: 0.25 A^2
        assert counts.mean() == pytest.approx(expected, rel=0.02)
        assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.05)
        assert np.all(counts == np.round(counts))  # electron counts are integers
    with pytest.raises(DataError):
        apply_dose(intensity, 0.0, 0.05)


def test_lower_dose_lower_snr(tiny_waves):
    cfg, ew = tiny_waves
    clean = expected_intensity(ew.field, -10.0, sampling_A=ew.sampling_A, pixel_size_nm=cfg.pixel_size_nm)

    def snr(dose):
        img = image_from_exit_wave(ew.field, -10.0, dose, sampling_A=ew.sampling_A, pixel_size_nm=cfg.pixel_size_nm,
                                   rng=1) / (dose * 0.25)
        signal = clean - clean.mean()
        return float(signal.std() / (img - clean).std())

    s30, s300, s1000 = snr(30), snr(300), snr(1000)
    assert s30 < s300 < s1000
    # Poisson: SNR grows as sqrt(dose)
    assert s1000 / s30 == pytest.approx(np.sqrt(1000 / 30), rel=0.15)


def test_defocus_changes_image_not_mask(tiny_waves):
    cfg, ew = tiny_waves
    a = expected_intensity(ew.field, -20.0, sampling_A=ew.sampling_A, pixel_size_nm=cfg.pixel_size_nm)
    b = expected_intensity(ew.field, 20.0, sampling_A=ew.sampling_A, pixel_size_nm=cfg.pixel_size_nm)
    assert a.shape == (cfg.size_px, cfg.size_px)
    assert np.abs(a - b).mean() > 0.01
    mask = mask_from_particle_wave(ew.particle, sampling_A=ew.sampling_A, pixel_size_nm=cfg.pixel_size_nm)
    # the mask covers the particle: about the projected area of its atoms, centred where the spec put it
    from scipy.spatial import ConvexHull

    from temzoo.simulate import build_field

    _, alone = build_field(ew.spec)
    hull_px = ConvexHull(alone.positions[:, :2]).volume / (cfg.pixel_size_nm * 10) ** 2
    assert 0.8 * hull_px < mask.sum() < 1.3 * hull_px
    p = ew.spec.particles[0]
    cy, cx = np.argwhere(mask).mean(axis=0) * cfg.pixel_size_nm
    assert abs(cx - p.center_nm[0]) < 0.3 and abs(cy - p.center_nm[1]) < 0.3
    # carbon alone (no particle) -> empty mask
    assert not mask_from_particle_wave(np.ones_like(ew.particle), sampling_A=ew.sampling_A,
                                       pixel_size_nm=cfg.pixel_size_nm).any()


# --- data sets and the cache -----------------------------------------------------------------------------------

def test_generate_masks_from_projection_and_cache(tmp_path):
    cache = tmp_path / "cache"
    cfg = tiny_config(n=6, variants_per_field=3, cache_dir=str(cache), dose_values=(30.0, 1000.0))
    first = generate(cfg, tmp_path / "a")
    assert first["exit_waves_computed"] == 2 and first["exit_waves_cached"] == 0
    assert len(list(cache.glob("*.npz"))) == 2
    second = generate(cfg, tmp_path / "b")
    assert second["exit_waves_computed"] == 0 and second["exit_waves_cached"] == 2
    assert second["seconds"] < first["seconds"]
    for k in range(6):
        stem = f"{k:05d}"
        a, b = (tmp_path / d / "images" / f"{stem}.tif" for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes()
    metas = [json.loads((tmp_path / "a/metadata" / f"{k:05d}.json").read_text()) for k in range(6)]
    for m in metas:
        for key in ("materials", "particles", "defocus_nm", "dose_e_per_A2", "carbon_thickness_nm", "pixel_size_nm",
                    "seed"):
            assert key in m
        assert m["dose_e_per_A2"] in (30.0, 1000.0) and -25 <= m["defocus_nm"] <= 25
    # variants of one field: different defocus/dose and images, the very same mask
    masks = [np.array(Image.open(tmp_path / "a/masks" / f"{k:05d}.png")) for k in range(6)]
    assert set(np.unique(masks[0])) == {0, 255}
    assert all(np.array_equal(masks[0], m) for m in masks[1:3])
    assert not np.array_equal(masks[0], masks[3])  # the next field
    assert len({m["defocus_nm"] for m in metas[:3]}) == 3


def test_generate_is_seeded_and_prefix_stable(tmp_path):
    cache = str(tmp_path / "cache")
    a = generate(tiny_config(n=2, cache_dir=cache, seed=7), tmp_path / "a")
    b = generate(tiny_config(n=3, cache_dir=cache, seed=7), tmp_path / "b")
    generate(tiny_config(n=1, cache_dir=cache, seed=8), tmp_path / "c")
    assert a["n_images"] == 2 and b["n_images"] == 3
    img = lambda d, k: (tmp_path / d / "images" / f"{k:05d}.tif").read_bytes()  # noqa: E731
    assert img("a", 0) == img("b", 0) and img("a", 1) == img("b", 1)
    assert img("a", 0) != img("c", 0)


def test_images_read_back_calibrated(tmp_path):
    from temzoo.io import read_micrograph

    generate(tiny_config(n=1, cache_dir=str(tmp_path / "cache")), tmp_path / "s")
    mg = read_micrograph(tmp_path / "s/images/00000.tif")
    assert mg.pixel_size_nm == pytest.approx(0.05)
    assert mg.shape == (128, 128)


def test_bad_config_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="material"):
        generate(tiny_config(materials=("Unobtainium",)), tmp_path)
    with pytest.raises(DataError, match="dose"):
        generate(tiny_config(dose_values=(-1.0,)), tmp_path)


def test_example_exit_waves_for_teaching(tmp_path):
    from temzoo.simulate import example_exit_waves

    cfg, ew = example_exit_waves("Pt", 2.5, size_px=96, carbon_nm=2.0, cache_dir=str(tmp_path))
    assert ew.field.shape == (192, 192) and [p.material for p in ew.spec.particles] == ["Pt"]
    img = image_from_exit_wave(ew.field, 0.0, 100.0, sampling_A=ew.sampling_A, pixel_size_nm=cfg.pixel_size_nm)
    assert img.shape == (96, 96) and img.dtype == np.float32
