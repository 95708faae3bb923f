"""``python -m temzoo COMMAND ...``: every command maps arguments to the same library calls the app makes.

Contract (ARCHITECTURE.md): errors exit 2 with exactly one line on stderr starting with ``error:``, no traceback.
Each command lives in ``temzoo/commands/<name>.py`` with ``add_arguments(parser)`` and ``run(args) -> int``; heavy
imports happen inside ``run`` so that ``--help`` and argument errors stay instant.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence

from temzoo.errors import TemzooError

# command name -> (module under temzoo.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("inspect", "list the real-space images in a microscope file with calibration and metadata"),
    "zoo": ("zoo", "list the model zoo (bundled, local, cached, Hub)"),
    "predict": ("predict", "segment a micrograph: mask, probability, confidence, particles, summary"),
    "evaluate": ("evaluate", "score a model on an image/mask folder pair"),
    "finetune": ("finetune", "fine-tune a zoo model on a few labelled images"),
    "pretrain-denoise": ("pretrain_denoise", "denoising pretraining on unlabelled micrographs (Poisson noise)"),
    "simulate": ("simulate", "simulate labelled HRTEM nanoparticle images with abTEM"),
    "push": ("push", "push a checkpoint folder to the Hugging Face Hub"),
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as the single ``error:`` line of the contract."""

    def error(self, message: str) -> None:  # type: ignore[override]
        cmd = " ".join(self.prog.split()[1:])
        hint = f"python -m temzoo {cmd} --help" if cmd else "python -m temzoo --help"
        sys.stderr.write(f"error: {message} (see '{hint}')\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="temzoo", description="Segment TEM/HRTEM micrographs with a model zoo.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(f"temzoo.commands.{module}")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from temzoo.zoo.network import configure

    configure()  # decide online/offline before anything imports huggingface_hub (it reads the env at import)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except TemzooError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 2
    except OSError as err:  # the environment (disk full, permissions), not a bug: say what and where
        if os.environ.get("TEMZOO_DEBUG"):
            raise
        where = f" ({err.filename})" if err.filename else ""
        hint = "free some space and run it again" if err.errno == errno.ENOSPC else "check the path and permissions"
        sys.stderr.write(f"error: {err.strerror or err}{where}; {hint}\n")
        return 2
    except Exception as err:  # noqa: BLE001 - the contract forbids tracebacks; TEMZOO_DEBUG=1 shows one
        if os.environ.get("TEMZOO_DEBUG"):
            raise
        msg = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        sys.stderr.write(f"error: unexpected failure ({msg}); rerun with TEMZOO_DEBUG=1 and report it\n")
        return 2
