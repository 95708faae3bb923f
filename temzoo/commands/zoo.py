"""``python -m temzoo zoo list [--json]``: the models available now (bundled, local, cached, Hub)."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION", parser_class=type(p))
    sub.required = True
    ls = sub.add_parser("list", help="list the zoo: id, source, path, pixel size, classes, params, description",
                        epilog="Besides the models listed, 'finetune --base' takes timm:NAME (e.g. timm:resnet18): an "
                               "ImageNet-pretrained timm encoder downloaded from the Hugging Face Hub (safetensors "
                               "only) with a fresh decoder; see docs/ZOO_SIZES.md. Network sizes for training from "
                               "scratch: --size small|large.")
    ls.add_argument("--json", action="store_true", help="print a JSON array of records instead of a table")
    ls.add_argument("--no-hub", action="store_true", help="do not query the Hub even when online")


def _table(rows: list[dict]) -> str:
    cols = ["id", "source", "pixel_size_nm", "classes", "params", "description", "path"]
    cells = [[_fmt(c, r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    widths[5] = min(widths[5], 60)
    line = lambda vals: "  ".join(v[:w].ljust(w) for v, w in zip(vals, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), *(line(row) for row in cells)])


def _fmt(col: str, v) -> str:
    if v is None:
        return "-"
    if col == "classes":
        return ",".join(v) if v else "(image)"
    if col == "params":
        return f"{v / 1e6:.2f}M"
    return str(v)


def run(args: argparse.Namespace) -> int:
    from temzoo.zoo.sources import list_models

    import sys

    models = list_models(hub=False if args.no_hub else None, include_damaged=True)
    for m in models:
        if m.damaged:  # skipped, said on stderr so --json stays the usable models only
            sys.stderr.write(f"warning: skipped damaged model {m.id} ({m.path}): {m.damaged}\n")
    rows = [m.to_json() for m in models if not m.damaged]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no models available: none bundled, none in your local zoo, and the Hub is not reachable")
    else:
        print(_table(rows))
    return 0
