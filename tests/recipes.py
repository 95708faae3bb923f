"""Run a recipe of scripts/recipes as a user does: its own process, offline, against this checkout's temzoo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_recipe(name: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python scripts/recipes/<name>.py ARGS`` from the checkout's root; output captured as text."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, str(REPO / "scripts" / "recipes" / f"{name}.py"), *args], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)
