"""``python -m temzoo predict PATH --model ID --out DIR [--tta] [--mc-dropout N] [--explain METHOD] [--image-index K]
[--pixel-size-nm NM]``

Writes the export bundle of :mod:`temzoo.export` into DIR, each file named after the image: ``<name>_mask.png``
(0/255), ``_mask.tif``, ``_probability.tif`` and ``_confidence.tif`` (float32 0..1), ``_particles.csv``,
``_summary.json``, ``_overlay.png`` and ``<name>.hspy``; with ``--explain`` also ``_importance.tif``. The Segment
page's downloads are the same files.
"""

from __future__ import annotations

import argparse
import sys

from temzoo.commands._args import add_pixel_size_argument

EXPLAIN_METHODS = ("integrated-gradients", "occlusion", "gradcam", "fourier")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="microscope file (DM3/DM4/EMD/SER/TIFF/PNG/JPEG ...)")
    p.add_argument("--model", required=True, help="zoo id, checkpoint folder or Hub repo id")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--tta", action="store_true", help="average over the 8 rotations/flips (adds tta_spread)")
    p.add_argument("--mc-dropout", type=int, default=0, metavar="N", help="Monte-Carlo dropout passes (0 = off)")
    p.add_argument("--explain", choices=EXPLAIN_METHODS, default=None, metavar="METHOD",
                   help=f"also write importance.tif: {', '.join(EXPLAIN_METHODS)}")
    p.add_argument("--image-index", type=int, default=None, metavar="K",
                   help="which image in the file (numbering as 'inspect' shows it); default: the first")
    p.add_argument("--frame", type=int, default=0, help="frame of a stack (default 0)")
    add_pixel_size_argument(p, "pixel size of the image in nm (for files without one; overrides the file's): "
                               "sizes in particles.csv are then in nm and the image is resampled to the model's")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from temzoo.errors import TemzooError
    from temzoo.io import read_micrograph
    from temzoo.export import export_prediction
    from temzoo.metrics import domain_shift
    from temzoo.predict import PredictOptions, predict
    from temzoo.zoo import load_model

    if args.mc_dropout < 0:
        raise TemzooError(f"--mc-dropout must be >= 0, got {args.mc_dropout}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise TemzooError(f"--out {out} is a file; give a folder")
    mg = read_micrograph(args.path, args.image_index).with_pixel_size(args.pixel_size_nm)
    ck = load_model(args.model)
    opts = PredictOptions(tta=args.tta, mc_dropout=args.mc_dropout, device=args.device)
    pred = predict(ck, mg, opts, frame=args.frame)
    explanation = None
    if args.explain:
        from temzoo.explain import explain

        explanation = explain(ck, mg, args.explain, frame=args.frame, prediction=pred,
                              options=None if args.device == "auto" else _explain_opts(args.device))
    domain = domain_shift(ck, mg, args.frame)
    extra = {"domain_shift": {"score": domain.ood_score, "threshold": domain.ood_threshold,
                              "warnings": domain.warnings}}
    try:
        bundle = export_prediction(out, pred, mg, args.frame, explanation=explanation, extra=extra)
    except OSError as err:
        raise TemzooError(f"could not write to {out}: {err.strerror or err}; check the folder and free space") from None
    for line in dict.fromkeys(pred.warnings + domain.warnings):
        sys.stderr.write(f"warning: {line}\n")
    print(f"{len(bundle.table)} objects, foreground {100 * float((pred.mask > 0).mean()):.1f} %, "
          f"mean confidence {float(pred.confidence.mean()):.3f}, {pred.seconds:.2f} s -> {out / bundle.name}_*")
    return 0


def _explain_opts(device: str):
    from temzoo.explain import ExplainOptions

    return ExplainOptions(device=device)
