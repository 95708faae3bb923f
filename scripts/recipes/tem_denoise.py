"""Recipe (b): zoo entry ``tem-denoise`` — Poisson-denoising pretraining (Kazimi & Sandfeld) as a fine-tuning base.

    python scripts/recipes/tem_denoise.py [--sim 240] [--minutes 10] [--device auto]
    python scripts/recipes/tem_denoise.py --corruption mask --epochs 9 --out DIR   # masked reconstruction instead

Images: noise-free simulated HRTEM fields (the ``clean/`` output of temzoo.simulate, exit waves shared with recipe a's
cache when ``--cache`` points at it) plus every real unlabelled micrograph in ../shared/data/unlabeled (atomic-
resolution STEM and in-situ bright-field TEM). temzoo.train's denoising task noises each tile at a random dose
(2-200 counts/px, Poisson) and learns to restore it. Held out (never trained on): one real STEM image, one real
bright-field frame and the simulated fields pinned as validation; on them the recipe measures PSNR of the noisy input
and of the model's output at several doses, and writes the card to temzoo/zoo/bundled/tem-denoise.

``--corruption mask`` trains masked reconstruction on the same images instead: square blocks of each tile are hidden
(set to the image mean) and the net fills them in from their context; the held-out table then compares the hidden
pixels filled by the net with the same pixels left at the mean. It is not bundled (docs/PRETRAINING_STUDY.md section
12 measures it as the first stage of a generalist), so it needs ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

from temzoo.paths import bundled_zoo_dir
from temzoo.validate import arg_number

from _common import machine, md_table, publish, timed, work_dir

HELD_OUT_REAL = ("Grain_boundry_gold_512px", "Chip-4-Heat-1-Frame-1357")
DOSES = (5.0, 20.0, 100.0)  # mean counts per pixel


def build_image_folder(work: Path, n_sim: int, cache: str | None, log: dict) -> tuple[Path, list[str]]:
    from temzoo.paths import shared_data_dir
    from temzoo.simulate import SimulationConfig, generate

    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("error: ../shared/data is absent; the recipe needs the real unlabelled micrographs")
    sim_dir = work / "sim"
    shutil.rmtree(sim_dir, ignore_errors=True)
    cfg = SimulationConfig(n=n_sim, variants_per_field=4, seed=0, write_clean=True,
                           cache_dir=cache or str(work / "cache"))
    with timed(f"simulate {n_sim} clean images", log):
        generate(cfg, sim_dir)
    images = work / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir()
    # one clean image per field: its variants differ only in defocus (the denoiser sees enough of that)
    clean = sorted((sim_dir / "clean").iterdir())
    for p in clean[:: cfg.variants_per_field]:
        (images / f"sim_{p.name}").symlink_to(p)
    real = sorted(p for p in (shared / "unlabeled").rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif"))
    for p in real:
        (images / f"{p.parent.name}_{p.name}").symlink_to(p)
    sims = sorted(p.stem for p in images.iterdir() if p.name.startswith("sim_"))
    val = [s for s in sims[-max(1, len(sims) // 8):]]
    val += [f"{p.parent.name}_{p.stem}" for p in real if p.stem in HELD_OUT_REAL]
    print(f"  {len(sims)} simulated + {len(real)} real images; held out: {len(val)}")
    return images, val


def psnr_table(result: Path, images: Path, val: list[str], device: str, corruption: str = "poisson") -> list[dict]:
    """PSNR (peak = clean range) of noisy inputs and of the model's outputs on the held-out images; for masked
    reconstruction, of the hidden pixels as given (the mean) and as filled in, at the run's mask ratio."""
    import numpy as np
    import torch

    from temzoo.device import pick_device
    from temzoo.predict import PredictOptions, model_maps, raw_output
    from temzoo.train import data as D
    from temzoo.train.augment import block_mask, poisson_noise
    from temzoo.train.config import TrainConfig
    from temzoo.zoo import load_model

    ck = load_model(str(result))
    cfg = TrainConfig.from_dict(ck.meta.provenance["config"])  # the run's own mask ratio and block size
    dev = pick_device(device)
    model = ck.model.to(dev).eval()
    raw = D.read_set(images, labelled=False)
    samples = {s.name: s for s in D.prepare(raw, None, ck.meta.norm)}
    rows = []
    for name in val:
        s = samples[name]
        clean = torch.from_numpy(s.image)[None, None]
        peak = float(clean.max() - clean.min())
        for dose in (DOSES if corruption == "poisson" else (None,)):
            g = torch.Generator().manual_seed(7)
            if dose is None:
                hidden = block_mask(1, *clean.shape[-2:], cfg.mask_ratio, cfg.mask_patch, g)
                noisy = clean * (1 - hidden)
                where = hidden[0, 0].numpy() > 0
            else:
                noisy = poisson_noise(clean, torch.tensor([dose]), g)
                where = np.ones(s.image.shape, bool)
            maps, _ = model_maps(model, noisy[0, 0].to(dev), ck.spec.stride, PredictOptions(), dev, ck.spec.in_channels,
                                 output=raw_output)
            out = maps[0].cpu().numpy()

            def psnr(x):
                mse = float(np.mean((np.asarray(x)[where] - s.image[where]) ** 2))
                return 10 * math.log10(peak**2 / max(mse, 1e-12))

            kind = "simulated HRTEM" if name.startswith("sim_") else ("real STEM" if "stem" in name else "real BF-TEM")
            rows.append({"image": name, "kind": kind, "dose": "masked" if dose is None else dose,
                         "psnr_noisy": round(psnr(noisy[0, 0].numpy()), 2), "psnr_denoised": round(psnr(out), 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="scratch folder (default $TEMZOO_HOME/recipes/tem-denoise or "
                                                 "tem-masked)")
    ap.add_argument("--cache", default=None, help="exit-wave cache (e.g. recipe a's work/cache to reuse its fields)")
    ap.add_argument("--out", default=None, help="where to publish (default: the bundled tem-denoise; --corruption "
                                                "mask needs one)")
    ap.add_argument("--sim", type=int, default=240, help="simulated images to generate (one clean per 4 is used)")
    ap.add_argument("--minutes", type=float, default=None, help="time budget (default 10 when --epochs is not given)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch budget (equal steps to compare corruptions)")
    ap.add_argument("--corruption", choices=("poisson", "mask"), default="poisson")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cpu-threads", type=arg_number(1, 1024, integer=True), default=None,
                    help="CPU threads (default: the cores idle by the 1-minute load average)")
    args = ap.parse_args()
    masked = args.corruption == "mask"
    if args.out is None and masked:
        raise SystemExit("error: --corruption mask needs --out DIR (the bundled tem-denoise is the Poisson base)")
    minutes = 10.0 if args.minutes is None and args.epochs is None else args.minutes

    from temzoo.train.config import TrainConfig  # the recipe keeps its mask defaults: the card quotes them
    from temzoo.train.denoise import pretrain_denoise

    work = work_dir("tem-masked" if masked else "tem-denoise", args.work)
    log: dict = {}
    images, val = build_image_folder(work, args.sim, args.cache, log)
    what = "masked-reconstruction" if masked else "denoising"
    method = (f"Masked-reconstruction pretraining base (hidden {TrainConfig.mask_patch} px blocks filled from their "
              "context)" if masked
              else "Poisson-denoising pretraining base (Kazimi & Sandfeld)")
    budget = " and ".join(x for x in (minutes and f"{minutes:g} min", args.epochs and f"{args.epochs} epochs") if x)
    with timed(f"{what} pretraining ({budget} budget)", log):
        run = work / "run"
        shutil.rmtree(run, ignore_errors=True)
        result = pretrain_denoise(images, work / "result", minutes=minutes, epochs=args.epochs, workdir=run,
                                  device=args.device, val_names=val, batch_size=8, tile_size=256, seed=0,
                                  corruption=args.corruption, cpu_threads=args.cpu_threads,
                                  description=f"{method} on simulated HRTEM and real STEM/BF-TEM micrographs; "
                                              "fine-tune it for segmentation (temzoo recipe b)",
                                  log=lambda m: print("  " + m, flush=True))
    with timed("PSNR on held-out images", log):
        rows = psnr_table(result, images, val, args.device, args.corruption)
    by = {}
    for r in rows:
        by.setdefault((r["kind"], r["dose"]), []).append(r)
    summary = [{"kind": k, "dose": d, "n_images": len(v),
                "psnr_noisy": round(sum(x["psnr_noisy"] for x in v) / len(v), 2),
                "psnr_denoised": round(sum(x["psnr_denoised"] for x in v) / len(v), 2)}
               for (k, d), v in sorted(by.items())]
    for s in summary:
        print(f"  {s['kind']:16s} {s['dose']!s:>6} : PSNR input {s['psnr_noisy']:.2f} dB -> output "
              f"{s['psnr_denoised']:.2f} dB ({s['n_images']} images)")
    gains = [s["psnr_denoised"] - s["psnr_noisy"] for s in summary]
    worst = min(summary, key=lambda s: s["psnr_denoised"] - s["psnr_noisy"])
    epochs = len((Path(result) / "metrics.jsonl").read_text().splitlines())
    spent = f"{epochs} epochs" + (f" in {minutes:g} min" if minutes is not None else "")
    measure = (f"the hidden pixels ({TrainConfig.mask_patch} px blocks, a share of {TrainConfig.mask_ratio:g}) "
               "filled by the net, against the same pixels left at the image mean" if masked
               else "Poisson noise at " + ", ".join(f"{d:g}" for d in DOSES)
               + " counts/px; mean PSNR gain over the noisy input")
    prov = {
        "metrics": {"psnr_gain_db": round(sum(gains) / len(gains), 3)},
        "eval_data": f"held-out images (1 real STEM, 1 real BF-TEM frame, unseen simulated fields); {measure}",
        "training_data": f"{images.name}: noise-free abTEM-simulated HRTEM fields (0.05 nm/px) plus the real "
                         "unlabelled micrographs of ../shared/data/unlabeled (AtomSegNet STEM, MIT; in-situ Ti "
                         "BF-TEM, MIT), at their own pixel size",
        "acquisition": "mixed: simulated 300 kV HRTEM; real HAADF-STEM (atomic resolution); real 2048 px BF-TEM",
        "tags": ["denoising", "pretrained", "base", "self-supervised",
                 "masked-reconstruction" if masked else "poisson"],
        "psnr_by_kind_and_dose": summary,
        "limitations": (
            f"A pretraining base, not a production {'inpainter' if masked else 'denoiser'}. Trained {spent} on "
            f"{machine()}. PSNR change (dB) on held-out images by kind"
            + ("" if masked else " and dose") + ": "
            + "; ".join(f"{s['kind']}{'' if masked else ' %g/px' % s['dose']} "
                        f"{s['psnr_denoised'] - s['psnr_noisy']:+.1f}" for s in summary)
            + f". Where the change is negative the output is worse than its input (worst: {worst['kind']}"
            + ("" if masked else f" at {worst['dose']:g} counts/px")
            + f", {worst['psnr_noisy']:.2f} -> {worst['psnr_denoised']:.2f} dB"
            + ("" if masked else "; likely because the short run smooths away fine detail such as lattice fringes")
            + "). Trained on 10 real micrographs and "
            "simulated fields; its value is as an initialisation for segmentation fine-tuning (see "
            "docs/PRETRAINING_STUDY.md), which is what the study measures."),
        "recipe": "scripts/recipes/tem_denoise.py" + (" --corruption mask" if masked else ""),
        "recipe_seconds": log,
    }
    out = Path(args.out) if args.out else bundled_zoo_dir() / "tem-denoise"
    publish(result, out, provenance=prov, eval_json={"psnr": rows, "summary": summary, "seconds": log},
            extra_md="## Measured PSNR on held-out images\n\n"
                     f"Machine: {machine()}.\n\n" + md_table(summary, ["kind", "dose", "n_images", "psnr_noisy",
                                                                       "psnr_denoised"]))
    print(json.dumps({"out": str(out), "summary": summary, "epochs": epochs, "seconds": log}))


if __name__ == "__main__":
    main()
