"""``python -m temzoo push DIR --repo ORG/NAME [--private]``: one commit to the Hugging Face Hub.

The token comes from ``$HF_TOKEN`` or the Hub login and is never printed; ``HF_ENDPOINT`` selects the Hub.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", metavar="DIR", help="checkpoint folder (config.json + model.safetensors + temzoo.json)")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="Hub model repo to create or update")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--message", default=None, help="commit message")


def run(args: argparse.Namespace) -> int:
    from temzoo.zoo.hub import push

    url = push(args.folder, args.repo, private=args.private, message=args.message)
    print(f"pushed {args.folder} to {args.repo}: {url}")
    return 0
