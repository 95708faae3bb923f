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


DASH_NAMES = ("a file name starting with '-' goes after '--' (python -m temzoo inspect -- -name.dm4) or as "
              "./-name.dm4; an option's value starting with '-' as --option=VALUE")


def say_error(message: str) -> None:
    """Write the contract's one ``error:`` line: control characters (a newline in a file name, ESC) escaped."""
    from temzoo.io.untrusted import shown

    sys.stderr.write(f"error: {shown(message)}\n")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as the single ``error:`` line of the contract."""

    argv: Sequence[str] = ()  # the command line being parsed (set by main), to recognise a file taken for an option

    def error(self, message: str) -> None:  # type: ignore[override]
        cmd = " ".join(self.prog.split()[1:])
        hint = f"python -m temzoo {cmd} --help" if cmd else "python -m temzoo --help"
        dashed = _dash_names(self.argv)
        if dashed:
            tok = dashed[0]
            message = (f"{message}; {tok!r} was taken for an option: give a file name starting with '-' after '--' "
                       f"(... -- {tok}) or as ./{tok}")
        elif "expected one argument" in message:
            message = f"{message}; {DASH_NAMES}"
        say_error(f"{message} (see '{hint}')")
        raise SystemExit(2)


def _dash_names(argv: Sequence[str]) -> list[str]:
    """Tokens before ``--`` that start with '-' and name an existing path or look like a file name (``-x.dm4``)."""
    out = []
    for tok in argv:
        if tok == "--":
            break
        if tok.startswith("-") and tok != "-" and "=" not in tok and (
                os.path.lexists(tok) or ("." in tok.lstrip("-.") and not _is_number(tok))):
            out.append(tok)
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="temzoo", description="Segment TEM/HRTEM micrographs with a model zoo.",
                     epilog=f"File names: {DASH_NAMES}.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=f"File names: {DASH_NAMES}.")
        mod = importlib.import_module(f"temzoo.commands.{module}")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from temzoo.zoo.network import configure

    configure()  # decide online/offline before anything imports huggingface_hub (it reads the env at import)
    parser = build_parser()
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except TemzooError as err:
        say_error(str(err))
        return 2
    except KeyboardInterrupt:
        say_error("interrupted")
        return 2
    except OSError as err:  # the environment (disk full, permissions), not a bug: say what and where
        if os.environ.get("TEMZOO_DEBUG"):
            raise
        where = f" ({err.filename})" if err.filename else ""
        hint = "free some space and run it again" if err.errno == errno.ENOSPC else "check the path and permissions"
        say_error(f"{err.strerror or err}{where}; {hint}")
        return 2
    except Exception as err:  # noqa: BLE001 - the contract forbids tracebacks; TEMZOO_DEBUG=1 shows one
        if os.environ.get("TEMZOO_DEBUG"):
            raise
        msg = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        say_error(f"unexpected failure ({msg}); rerun with TEMZOO_DEBUG=1 and report it")
        return 2
