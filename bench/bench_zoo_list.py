"""Offline ``zoo list`` and bundled-model loading times (the issue's target: a few seconds with no network).

Runs the CLI in fresh processes with HF_HUB_OFFLINE unset and HF_ENDPOINT pointing at an unroutable address, so
temzoo's own probe must notice the Hub is unreachable (without it the client retries ~23 s per miss).
Usage: python bench/bench_zoo_list.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _time(cmd: list[str], env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return time.perf_counter() - t, out.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = "http://10.255.255.1"  # blackholed: the worst case for a naive client
    py = sys.executable
    rows = []
    times = [_time([py, "-m", "temzoo", "zoo", "list", "--json"], env)[0] for _ in range(args.repeat)]
    rows.append(("zoo list --json (offline, probe)", statistics.median(times)))
    times = [_time([py, "-m", "temzoo", "zoo", "list", "--json"], dict(env, HF_HUB_OFFLINE="1"))[0]
             for _ in range(args.repeat)]
    rows.append(("zoo list --json (HF_HUB_OFFLINE=1)", statistics.median(times)))
    _, out = _time([py, "-m", "temzoo", "zoo", "list", "--json"], dict(env, HF_HUB_OFFLINE="1"))
    for m in json.loads(out):
        if m["source"] == "bundled":
            code = f"from temzoo.zoo import load_model; load_model({m['id']!r})"
            rows.append((f"load {m['id']} (fresh process)", _time([py, "-c", code], env)[0]))
    print(f"{'what':48s} {'seconds':>8s}")
    for name, s in rows:
        print(f"{name:48s} {s:8.2f}")


if __name__ == "__main__":
    main()
