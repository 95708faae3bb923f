"""``python -m temzoo simulate``: labelled HRTEM nanoparticle images (abTEM multislice) -> images/, masks/,
metadata/."""

from __future__ import annotations

import argparse
import json

from temzoo.errors import DataError
from temzoo.validate import arg_number, arg_seed

MATERIAL_NAMES = ("Au", "Pt", "Ag", "CdSe", "CdSe-zb", "ZnS", "ZnS-wz")  # kept in sync with structures.MATERIALS


def parse_values(text: str, what: str) -> tuple[tuple[float, float] | None, tuple[float, ...] | None]:
    """``'LO:HI'`` -> a range; ``'A,B,C'`` or ``'A'`` -> values to choose from."""
    try:
        if ":" in text:
            lo, hi = (float(x) for x in text.split(":"))
            if hi < lo:
                raise ValueError
            return (lo, hi), None
        values = tuple(float(x) for x in text.split(",") if x.strip())
        if not values:  # an empty --dose= would silently mean the default range
            raise ValueError
        return None, values
    except ValueError:
        raise DataError(f"--{what} {text!r} is not LO:HI or a comma-separated list of numbers") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (images/, masks/, metadata/, simulation.json)")
    p.add_argument("--n", type=arg_number(1, 1_000_000, integer=True), required=True, help="number of images")
    p.add_argument("--material", default="Au,Pt,Ag,CdSe,ZnS",
                   help=f"comma-separated materials from {', '.join(MATERIAL_NAMES)} (default: Au,Pt,Ag,CdSe,ZnS)")
    p.add_argument("--dose", default="30:1000",
                   help="electron dose in e/A^2: LO:HI (log-uniform) or a list A,B,C (default 30:1000)")
    p.add_argument("--defocus", default="-25:25",
                   help="defocus in nm (positive = underfocus): LO:HI or a list; write --defocus=-25:25 for "
                        "negative values (default -25:25)")
    p.add_argument("--seed", type=arg_seed, default=0, help="random seed, 0 .. 2**32-1 (default 0)")
    p.add_argument("--pixel-size-nm", type=arg_number(0, 0.5, lo_open=True), default=0.05, help="detector pixel size (default 0.05 nm)")
    p.add_argument("--size", type=arg_number(32, 4096, integer=True), default=256, help="image size in pixels (square, default 256)")
    p.add_argument("--diameter-nm", default="2:10", help="particle diameter range LO:HI nm (default 2:10)")
    p.add_argument("--particles", default="1:5", help="particles per field LO:HI (default 1:5)")
    p.add_argument("--carbon-nm", default="2:8", help="amorphous carbon thickness LO:HI nm (default 2:8)")
    p.add_argument("--variants", type=arg_number(1, 1000, integer=True), default=4, help="defocus/dose variants per simulated field (default 4)")
    p.add_argument("--voltage-kv", type=arg_number(1, 10_000), default=300.0,
                   help="accelerating voltage in kV (default 300)")
    p.add_argument("--cs-mm", type=arg_number(-100, 100), default=0.02, help="spherical aberration (default 0.02 mm, corrected)")
    p.add_argument("--focal-spread-nm", type=arg_number(0, 1000), default=1.0)
    p.add_argument("--blur-px", type=arg_number(0, 100), default=0.0, help="detector blur, Gaussian sigma in pixels")
    p.add_argument("--label-threshold", type=arg_number(0, 6.3, lo_open=True), default=None,
                   help="mask = particle exit-wave phase above this (rad; default pi/32, the paper's pi/16 = 0.196)")
    p.add_argument("--format", choices=("tif", "png"), default="tif", help="float32 TIFF or 16-bit PNG counts")
    p.add_argument("--clean", action="store_true", help="also write noise-free images in clean/")
    p.add_argument("--cache", default=None, help="exit-wave cache folder (default $TEMZOO_HOME/cache/exitwaves)")
    p.add_argument("--no-cache", action="store_true", help="always recompute exit waves")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _range(text: str, what: str, cast=float) -> tuple:
    rng, values = parse_values(text, what)
    if rng is None:
        if not values or len(values) != 1:
            raise DataError(f"--{what} {text!r} must be LO:HI or one number")
        rng = (values[0], values[0])
    from temzoo.validate import number

    return tuple(number(x, f"--{what}", integer=cast is int) for x in rng)


def build_config(args: argparse.Namespace):
    from temzoo.simulate.dataset import SimulationConfig

    dose_range, dose_values = parse_values(args.dose, "dose")
    defocus_range, defocus_values = parse_values(args.defocus, "defocus")
    materials = tuple(m.strip() for m in args.material.split(",") if m.strip())
    cfg = SimulationConfig(
        n=args.n, materials=materials, seed=args.seed, pixel_size_nm=args.pixel_size_nm, size_px=args.size,
        dose_range=dose_range or (30.0, 1000.0), dose_values=dose_values,
        defocus_range=defocus_range or (-25.0, 25.0), defocus_values=defocus_values,
        diameter_nm=_range(args.diameter_nm, "diameter-nm"), n_particles=_range(args.particles, "particles", int),
        carbon_nm=_range(args.carbon_nm, "carbon-nm"), variants_per_field=args.variants, energy_kv=args.voltage_kv,
        cs_mm=args.cs_mm, focal_spread_nm=args.focal_spread_nm, blur_px=args.blur_px, image_format=args.format,
        write_clean=args.clean, cache_dir=args.cache, use_cache=not args.no_cache,
    )
    if args.label_threshold is not None:
        cfg.label_threshold_rad = args.label_threshold
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from temzoo.simulate.dataset import generate

    cfg = build_config(args)
    bar = tqdm(total=cfg.n, unit="img", desc="simulate", disable=args.quiet)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        summary = generate(cfg, args.out, progress=progress)
    finally:
        bar.close()
    print(json.dumps({k: v for k, v in summary.items() if k != "config"} | {"out": str(args.out)}))
    return 0
