"""Recipe (b): zoo entry ``tem-denoise`` — Poisson-denoising pretraining (Kazimi & Sandfeld) as a fine-tuning base.

    python scripts/recipes/tem_denoise.py [--sim 240] [--minutes 10] [--device auto]

Images: noise-free simulated HRTEM fields (the ``clean/`` output of temzoo.simulate, exit waves shared with recipe a's
cache when ``--cache`` points at it) plus every real unlabelled micrograph in ../shared/data/unlabeled (atomic-
resolution STEM and in-situ bright-field TEM). temzoo.train's denoising task noises each tile at a random dose
(2-200 counts/px, Poisson) and learns to restore it. Held out (never trained on): one real STEM image, one real
bright-field frame and the simulated fields pinned as validation; on them the recipe measures PSNR of the noisy input
and of the model's output at several doses, and writes the card to temzoo/zoo/bundled/tem-denoise.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

from temzoo.paths import bundled_zoo_dir

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


def psnr_table(result: Path, images: Path, val: list[str], device: str) -> list[dict]:
    """PSNR (peak = clean range) of noisy inputs and of the model's outputs on the held-out images."""
    import numpy as np
    import torch

    from temzoo.device import pick_device
    from temzoo.predict import PredictOptions, model_maps, raw_output
    from temzoo.train import data as D
    from temzoo.train.augment import poisson_noise
    from temzoo.zoo import load_model

    ck = load_model(str(result))
    dev = pick_device(device)
    model = ck.model.to(dev).eval()
    raw = D.read_set(images, labelled=False)
    samples = {s.name: s for s in D.prepare(raw, None, ck.meta.norm)}
    rows = []
    for name in val:
        s = samples[name]
        clean = torch.from_numpy(s.image)[None, None]
        peak = float(clean.max() - clean.min())
        for dose in DOSES:
            g = torch.Generator().manual_seed(7)
            noisy = poisson_noise(clean, torch.tensor([dose]), g)
            maps, _ = model_maps(model, noisy[0, 0].to(dev), ck.spec.stride, PredictOptions(), dev, ck.spec.in_channels,
                                 output=raw_output)
            out = maps[0].cpu().numpy()

            def psnr(x):
                mse = float(np.mean((np.asarray(x) - s.image) ** 2))
                return 10 * math.log10(peak**2 / max(mse, 1e-12))

            kind = "simulated HRTEM" if name.startswith("sim_") else ("real STEM" if "stem" in name else "real BF-TEM")
            rows.append({"image": name, "kind": kind, "dose": dose, "psnr_noisy": round(psnr(noisy[0, 0].numpy()), 2),
                         "psnr_denoised": round(psnr(out), 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="scratch folder (default $TEMZOO_HOME/recipes/tem-denoise)")
    ap.add_argument("--cache", default=None, help="exit-wave cache (e.g. recipe a's work/cache to reuse its fields)")
    ap.add_argument("--out", default=str(bundled_zoo_dir() / "tem-denoise"))
    ap.add_argument("--sim", type=int, default=240, help="simulated images to generate (one clean per 4 is used)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    from temzoo.train.denoise import pretrain_denoise

    work = work_dir("tem-denoise", args.work)
    log: dict = {}
    images, val = build_image_folder(work, args.sim, args.cache, log)
    with timed(f"denoising pretraining ({args.minutes} min budget)", log):
        run = work / "run"
        shutil.rmtree(run, ignore_errors=True)
        result = pretrain_denoise(images, work / "result", minutes=args.minutes, workdir=run, device=args.device,
                                  val_names=val, batch_size=8, tile_size=256, seed=0,
                                  description="Poisson-denoising pretraining base (Kazimi & Sandfeld) on simulated "
                                              "HRTEM and real STEM/BF-TEM micrographs; fine-tune it for "
                                              "segmentation (temzoo recipe b)",
                                  log=lambda m: print("  " + m, flush=True))
    with timed("PSNR on held-out images", log):
        rows = psnr_table(result, images, val, args.device)
    by = {}
    for r in rows:
        by.setdefault((r["kind"], r["dose"]), []).append(r)
    summary = [{"kind": k, "dose": d, "n_images": len(v),
                "psnr_noisy": round(sum(x["psnr_noisy"] for x in v) / len(v), 2),
                "psnr_denoised": round(sum(x["psnr_denoised"] for x in v) / len(v), 2)}
               for (k, d), v in sorted(by.items())]
    for s in summary:
        print(f"  {s['kind']:16s} dose {s['dose']:5g}: PSNR noisy {s['psnr_noisy']:.2f} dB -> denoised "
              f"{s['psnr_denoised']:.2f} dB ({s['n_images']} images)")
    gains = [s["psnr_denoised"] - s["psnr_noisy"] for s in summary]
    worst = min(summary, key=lambda s: s["psnr_denoised"] - s["psnr_noisy"])
    epochs = len((Path(result) / "metrics.jsonl").read_text().splitlines())
    prov = {
        "metrics": {"psnr_gain_db": round(sum(gains) / len(gains), 3)},
        "eval_data": "held-out images (1 real STEM, 1 real BF-TEM frame, unseen simulated fields), Poisson noise at "
                     f"{', '.join(f'{d:g}' for d in DOSES)} counts/px; mean PSNR gain over the noisy input",
        "training_data": f"{images.name}: noise-free abTEM-simulated HRTEM fields (0.05 nm/px) plus the real "
                         "unlabelled micrographs of ../shared/data/unlabeled (AtomSegNet STEM, MIT; in-situ Ti "
                         "BF-TEM, MIT), at their own pixel size",
        "acquisition": "mixed: simulated 300 kV HRTEM; real HAADF-STEM (atomic resolution); real 2048 px BF-TEM",
        "tags": ["denoising", "pretrained", "base", "self-supervised", "poisson"],
        "psnr_by_kind_and_dose": summary,
        "limitations": (
            f"A pretraining base, not a production denoiser. Trained {epochs} epochs in {args.minutes:g} min on "
            f"{machine()}. PSNR change (dB) on held-out images by kind and dose: "
            + "; ".join(f"{s['kind']} {s['dose']:g}/px {s['psnr_denoised'] - s['psnr_noisy']:+.1f}" for s in summary)
            + f". Where the change is negative the output is worse than its noisy input (worst: {worst['kind']} at "
            f"{worst['dose']:g} counts/px, {worst['psnr_noisy']:.2f} -> {worst['psnr_denoised']:.2f} dB; likely "
            "because the short run smooths away fine detail such as lattice fringes). Trained on 10 real "
            "micrographs and "
            "simulated fields; its value is as an initialisation for segmentation fine-tuning (see "
            "docs/PRETRAINING_STUDY.md), which is what the study measures."),
        "recipe": "scripts/recipes/tem_denoise.py",
        "recipe_seconds": log,
    }
    out = Path(args.out)
    publish(result, out, provenance=prov, eval_json={"psnr": rows, "summary": summary, "seconds": log},
            extra_md="## Measured PSNR on held-out images\n\n"
                     f"Machine: {machine()}.\n\n" + md_table(summary, ["kind", "dose", "n_images", "psnr_noisy",
                                                                       "psnr_denoised"]))
    print(json.dumps({"out": str(out), "summary": summary, "epochs": epochs, "seconds": log}))


if __name__ == "__main__":
    main()
