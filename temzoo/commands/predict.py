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

from temzoo.commands._args import add_overwrite_argument, add_pixel_size_argument
from temzoo.validate import arg_number

EXPLAIN_METHODS = ("integrated-gradients", "occlusion", "gradcam", "fourier")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", nargs="+",
                   help="microscope file (DM3/DM4/EMD/SER/TIFF/PNG/JPEG ...); several files, folders or globs make "
                        "a batch: one bundle per image (every frame of a stack) in DIR/<name>/, DIR/summary.csv, "
                        "DIR/particles.csv, sizes.png, series.csv/png; a re-run resumes")
    p.add_argument("--model", required=True, help="zoo id, checkpoint folder or Hub repo id")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: new, empty, or an earlier temzoo prediction folder (never among the inputs)")
    add_overwrite_argument(p)
    p.add_argument("--tta", action="store_true", help="average over the 8 rotations/flips (adds tta_spread)")
    p.add_argument("--mc-dropout", type=arg_number(0, 1000, integer=True), default=0, metavar="N", help="Monte-Carlo dropout passes (0 = off)")
    p.add_argument("--explain", choices=EXPLAIN_METHODS, default=None, metavar="METHOD",
                   help=f"also write importance.tif: {', '.join(EXPLAIN_METHODS)}")
    p.add_argument("--image-index", type=arg_number(0, 1_000_000, integer=True), default=None, metavar="K",
                   help="which image in the file (numbering as 'inspect' shows it); default: the first")
    p.add_argument("--frame", type=arg_number(0, 10_000_000, integer=True), default=0, help="frame of a stack (default 0)")
    add_pixel_size_argument(p, "pixel size of the image in nm (for files without one; overrides the file's): "
                               "sizes in particles.csv are then in nm and the image is resampled to the model's")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    b = p.add_argument_group("batch")
    b.add_argument("--all-frames", action="store_true",
                   help="a batch even for one file: every frame of a stack gets its own bundle (and the series)")
    b.add_argument("--workers", type=arg_number(0, 256, integer=True), default=0, metavar="N",
                   help="run on a local dask.distributed cluster of N worker processes (0: in this process)")
    p.add_argument("--threads", type=arg_number(1, 1024, integer=True), default=None, metavar="N",
                   help="torch threads per image (default: all cores in one process, cores/N with --workers N); "
                        "float maps are byte-identical between runs at the same value")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing dask.distributed cluster (e.g. tcp://host:8786; workers need temzoo)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from temzoo.errors import TemzooError
    from temzoo.io import read_micrograph
    from temzoo.io.outputs import check_output, written
    from temzoo.io.untrusted import shown
    from temzoo.batch import predict_one, task_env
    from temzoo.predict import PredictOptions
    from temzoo.zoo import load_model

    if _is_batch(args):
        return _run_batch(args)
    plan = check_output(args.out, "prediction", overwrite=args.overwrite, inputs=[args.path[0], *_model_dir(args)],
                        merge=True)
    out = plan.final
    mg = read_micrograph(args.path[0], args.image_index).with_pixel_size(args.pixel_size_nm)
    ck = load_model(args.model)
    opts = PredictOptions(tta=args.tta, mc_dropout=args.mc_dropout, device=args.device)
    with task_env(args.threads):
        pred, bundle, domain = predict_one(
            ck, mg, args.frame, opts, explain_method=args.explain,
            explain_options=None if args.device == "auto" else _explain_opts(args.device))
    try:
        with written(plan) as tmp:  # new files appear whole; an earlier bundle of this image needs --overwrite
            bundle.write(tmp)
    except OSError as err:
        raise TemzooError(f"could not write to {out}: {err.strerror or err}; check the folder and free space") from None
    for line in dict.fromkeys(pred.warnings + domain.warnings):
        sys.stderr.write(f"warning: {shown(line)}\n")
    print(f"{len(bundle.table)} objects, foreground {100 * float((pred.mask > 0).mean()):.1f} %, "
          f"mean confidence {float(pred.confidence.mean()):.3f}, {pred.seconds:.2f} s -> {out / bundle.name}_*")
    return 0


def _model_dir(args: argparse.Namespace) -> list[str]:
    """The --model folder when it is one (an input: never written into)."""
    from pathlib import Path

    return [args.model] if Path(args.model).is_dir() else []


def _is_batch(args: argparse.Namespace) -> bool:
    """Several inputs, a folder, a glob, a cluster or --all-frames make a batch; one file keeps the flat bundle."""
    from pathlib import Path

    p = Path(args.path[0])
    return (len(args.path) > 1 or args.all_frames or bool(args.workers) or bool(args.scheduler)
            or p.is_dir() or (not p.exists() and any(c in args.path[0] for c in "*?[")))


def _run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from temzoo.batch import BatchConfig, run_batch
    from temzoo.errors import TemzooError
    from temzoo.io.untrusted import shown

    if args.explain or args.frame:
        raise TemzooError("--explain and --frame are for one image; a batch predicts every frame of every input")
    cfg = BatchConfig(model=args.model, tta=args.tta, mc_dropout=args.mc_dropout, device=args.device,
                      pixel_size_nm=args.pixel_size_nm, image_index=args.image_index, threads=args.threads)
    bar = None

    def progress(done: int, total: int, name: str) -> None:
        nonlocal bar
        if bar is None:
            # only on a terminal: piped stderr keeps the contract's single error line
            bar = tqdm(total=total, desc="predict", unit="file", file=sys.stderr, dynamic_ncols=True, disable=None)
        bar.update(done - bar.n)
        bar.set_postfix_str(name[-40:], refresh=False)

    try:
        res = run_batch([*args.path], args.out, cfg, workers=args.workers, scheduler=args.scheduler,
                        progress=progress)
    finally:
        if bar is not None:
            bar.close()
    ok = len(res.rows) - len(res.failed)
    if not ok:  # one error line (the contract), with the first reason; the rest are in summary.csv
        first = f" ({shown(res.failed[0]['file'])}: {res.failed[0]['error']})" if res.failed else ""
        raise TemzooError(f"no image could be predicted{first}; every reason is in {res.out / 'summary.csv'}")
    for row in res.failed:
        sys.stderr.write(f"warning: {shown(row['file'])}: {shown(row['error'])}\n")
    print(f"{ok} image(s) done ({res.skipped} from an earlier run), {len(res.failed)} failed -> "
          f"{res.out / 'summary.csv'}")
    return 0


def _explain_opts(device: str):
    from temzoo.explain import ExplainOptions

    return ExplainOptions(device=device)
