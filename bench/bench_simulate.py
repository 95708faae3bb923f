"""Speed of temzoo.simulate: one multislice field (cold and cached) and one defocus/dose variant.

    HF_HUB_OFFLINE=1 python bench/bench_simulate.py [--size 256] [--pixel-size-nm 0.05]

Targets: a variant (CTF + |.|^2 + detector binning + Poisson) in milliseconds (< 50 ms for a 512^2 wave, the
teaching page's interactive budget); a cached field load well under the multislice time.
"""

from __future__ import annotations

import argparse
import tempfile
import time



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256, help="image size in px (multislice grid is 2x this)")
    ap.add_argument("--pixel-size-nm", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()

    from temzoo.simulate import SimulationConfig, compute_exit_waves, field_spec, image_from_exit_wave

    cfg = SimulationConfig(size_px=args.size, pixel_size_nm=args.pixel_size_nm)
    with tempfile.TemporaryDirectory() as cache:
        compute_exit_waves(field_spec(cfg, 99), cfg.sampling_A, cache_dir=cache)  # abTEM warm-up (JIT, dask)
        rows = []
        spec = field_spec(cfg, 0)
        t = time.perf_counter()
        ew = compute_exit_waves(spec, cfg.sampling_A, cache_dir=cache)
        rows.append(("multislice field (particles on carbon + particles alone)", time.perf_counter() - t))
        t = time.perf_counter()
        compute_exit_waves(spec, cfg.sampling_A, cache_dir=cache)
        rows.append(("same field from the cache", time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(args.repeats):
            image_from_exit_wave(ew.field, -25 + 50 * i / args.repeats, 30 * 1.2**i, sampling_A=ew.sampling_A,
                                 pixel_size_nm=cfg.pixel_size_nm, rng=i)
        rows.append(("one variant, new defocus each (image_from_exit_wave)", (time.perf_counter() - t) / args.repeats))
        t = time.perf_counter()
        for i in range(args.repeats):
            image_from_exit_wave(ew.field, 5.0, 30 * 1.2**i, sampling_A=ew.sampling_A,
                                 pixel_size_nm=cfg.pixel_size_nm, rng=i)
        rows.append(("one variant, same defocus (CTF cached)", (time.perf_counter() - t) / args.repeats))
    n = ew.field.shape[0]
    print(f"field {cfg.extent_nm:.1f} nm, image {args.size}^2 px at {args.pixel_size_nm} nm/px, multislice {n}^2 "
          f"at {ew.sampling_A:.3f} A, {len(spec.particles)} particle(s), carbon {spec.carbon_thickness_nm} nm")
    print(f"{'step':60s} {'ms':>10s}")
    for name, s in rows:
        print(f"{name:60s} {s * 1000:10.1f}")
    print(f"variants per multislice run for the same cost: {rows[0][1] / rows[2][1]:.0f}x")


if __name__ == "__main__":
    main()
