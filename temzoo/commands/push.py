"""`python -m temzoo push` (placeholder until its issue lands; see ARCHITECTURE.md for the contract)."""

from __future__ import annotations

import argparse

from temzoo.errors import TemzooError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace) -> int:
    raise TemzooError("'push' is not available in this version yet")
