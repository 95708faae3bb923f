"""Options several commands share, defined once (same spelling, same check, same help)."""

from __future__ import annotations

import argparse


def pixel_size_arg(text: str) -> float:
    """argparse ``type`` for ``--pixel-size-nm``: temzoo.io.units.check_pixel_size, reported as a usage error."""
    from temzoo.errors import TemzooError
    from temzoo.io.units import check_pixel_size

    try:
        return check_pixel_size(text, "value")
    except TemzooError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_pixel_size_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup, help_text: str | None = None) -> None:
    """The one ``--pixel-size-nm`` option of every command that reads images."""
    p.add_argument("--pixel-size-nm", type=pixel_size_arg, default=None, metavar="NM",
                   help=help_text or "pixel size of the images in nm (for files without one; overrides the file's)")


def add_overwrite_argument(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The one ``--overwrite`` of every command that writes an output folder (temzoo.io.outputs)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier temzoo output of the same kind in --out (a folder of other files is "
                        "never replaced)")
