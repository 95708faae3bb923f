"""``python -m temzoo evaluate --model ID --images DIR --masks DIR [--pixel-size-nm X] [--json]``

Images and masks are matched by file stem; pixel metrics are pooled over all images at threshold 0.5 (f1, iou, dice,
precision, recall) plus, for objects, object_f1 (instances matched at IoU >= 0.5) and count_error, or, for a boundary
network (the model's class kind), the enclosed grains counted in both and the grain-size distance; ece, n_images.
"""

from __future__ import annotations

import argparse
import json
import sys

from temzoo.commands._args import add_pixel_size_argument

KEYS = ("f1", "iou", "dice", "precision", "recall", "object_f1", "count_error", "ece", "n_images")
NETWORK_KEYS = ("f1", "iou", "dice", "precision", "recall", "n_pred_grains", "n_true_grains", "grain_count_error",
                "size_distance", "ece", "n_images")  # boundary networks: grains, never object F1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="zoo id, checkpoint folder or Hub repo id")
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    p.add_argument("--masks", required=True, metavar="DIR", help="folder of masks with the images' file stems")
    add_pixel_size_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--tta", action="store_true", help="predict with 8-fold test-time augmentation")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")


def run(args: argparse.Namespace) -> int:
    from temzoo.metrics import evaluate_folders
    from temzoo.predict import PredictOptions
    from temzoo.zoo import load_model

    ck = load_model(args.model)
    res = evaluate_folders(ck, args.images, args.masks, pixel_size_nm=args.pixel_size_nm,
                           options=PredictOptions(tta=args.tta, device=args.device))
    if args.json:
        from temzoo.io.writers import _jsonable

        sys.stdout.write(json.dumps(_jsonable(res)) + "\n")
    else:
        for k in NETWORK_KEYS if res["kind"] == "network" else KEYS:
            v = res[k]
            if v is None:
                print(f"{k:12s} -")
                continue
            print(f"{k:12s} {v}" if isinstance(v, int) else f"{k:12s} {v:.4f}")
    return 0
