"""Wall-clock time of each Teach lesson with the page's default settings, from a fresh TEMZOO_HOME (first use:
simulation included), on this machine's CPU. Writes docs/LESSON_TIMINGS.md.

    HF_HUB_OFFLINE=1 python bench/lesson_timings.py [--out docs/LESSON_TIMINGS.md]

What is timed is what the page runs after the student's clicks (the library calls); Streamlit's own rendering adds
well under a second per rerun. The stand-in model (used only when the zoo model is not installed) is timed separately.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--standin", action="store_true", help="also time building the stand-in model (~1 min)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "LESSON_TIMINGS.md"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = Path(tempfile.mkdtemp(prefix="tz_lesson_bench_"))
    os.environ["TEMZOO_HOME"] = str(home)

    import torch

    from temzoo.lessons import dose_defocus as L1
    from temzoo.lessons import fringes as L2
    from temzoo.lessons import label_count as L3
    from temzoo.lessons import layers as L4
    from temzoo.lessons import trust as L5
    from temzoo.lessons.workspace import Workspace, load

    ws = Workspace()
    rows: list[tuple[str, str, float, str]] = []
    load_start = os.getloadavg()[0]

    def timed(lesson: str, what: str, fn, note=lambda r: ""):
        t0 = time.perf_counter()
        r = fn()
        dt = time.perf_counter() - t0
        rows.append((lesson, what, dt, note(r)))
        print(f"{lesson:4s} {dt:7.1f} s  {what}  {note(r)}", flush=True)
        return r

    model = ws.find_model() or ws.build_standin(45.0)
    ck = load(model)
    fld = timed("1", "simulate the lesson field (multislice, first use only)", lambda: L1.load_field(ws))
    timed("1", "one slider move (re-image + segment)", lambda: L1.view(fld, 500.0, -10.0, ck))
    timed("1", "dose and defocus sweeps (15 images segmented)",
          lambda: (L1.sweep(fld, "dose", L1.DOSES, -10.0, ck), L1.sweep(fld, "defocus", L1.DEFOCI, 1000.0, ck)))
    timed("2", "band ablation + integrated gradients (16 steps) + receptive field",
          lambda: L2.run(ck, fld, 1000.0, -10.0, 16, model.label), lambda r: " ".join(L2.findings(r)[:2]))
    ls = timed("3-5", "simulate the lesson set (6 fields x 2 images, first use only)", lambda: ws.lesson_set())
    runs = ws.root / "bench-runs"
    timed("3", f"6 runs x {L3.DEFAULT_SECONDS:g} s (scratch / pretrained x 1, 2, 4 labels)",
          lambda: L3.run(model.ref, ls, runs, L3.LABEL_COUNTS, L3.DEFAULT_SECONDS, model.label),
          lambda r: " ".join(L3.findings(r)))
    timed("4", f"4 runs x {L4.DEFAULT_SECONDS:g} s (frozen encoder / decoder, full, L2-SP)",
          lambda: L4.run(ck, model.ref, ls, runs, L4.STRATEGIES, L4.DEFAULT_LABELS, L4.DEFAULT_SECONDS, model.label),
          lambda r: " ".join(L4.findings(r)[2:]))
    r5 = timed("5", "calibration + uncertainty + wrong label (12 images segmented)",
               lambda: L5.run(ck, ls, model.label), lambda r: " ".join(L5.findings(r)))
    timed("5", "fine-tune on the right and on the wrong label (2 x 15 s)",
          lambda: L5.react(model.ref, ls, r5, runs, 15.0), lambda r: L5.findings(r5, r)[-1])

    per: dict[str, float] = {}
    for lesson, _, dt, _ in rows:
        per[lesson] = per.get(lesson, 0.0) + dt
    shared_set = per.get("3-5", 0.0)  # the lesson set is simulated once for lessons 3-5
    total_first = {"1": per.get("1", 0.0), "2 (after 1: the field is shared)": per.get("2", 0.0),
                   "2 (opened first)": per.get("2", 0.0) + rows[0][2] if rows[0][0] == "1" else per.get("2", 0.0),
                   "3": per.get("3", 0.0) + shared_set, "4": per.get("4", 0.0) + shared_set,
                   "5": per.get("5", 0.0) + shared_set}
    if args.standin:
        from temzoo.lessons.workspace import Workspace as W

        timed("-", "stand-in model (simulate its set + 45 s training; only when the zoo model is not installed)",
              lambda: W(home / "standin-bench").build_standin(45.0))
        total_first["stand-in, added once to the first lesson opened"] = rows[-1][2]
    lines = [
        "# Lesson timings",
        "",
        f"Measured by `bench/lesson_timings.py` on {time.strftime('%Y-%m-%d %H:%M')} UTC: {platform.machine()} CPU, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch threads; "
        f"load average {load_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end (the machine was shared "
        "with other jobs, so these are pessimistic). Model: "
        f"{model.label}. Page defaults; a fresh TEMZOO_HOME, so first-use simulation is included.",
        "",
        "| lesson | step | seconds | what the run showed |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {a} | {b} | {c:.1f} | {d.replace('|', '&#124;')} |" for a, b, c, d in rows]
    lines += [
        "",
        "Per lesson, first use (a lesson's own steps plus the one-off simulation it needs; lessons 3-5 share the "
        "lesson set, lessons 1-2 the lesson field):",
        "",
        "| lesson | seconds, first use | limit |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v:.0f} | {'180' if not k.startswith('stand-in') else ''} |" for k, v in total_first.items()]
    lines += [
        "",
        "Later visits skip the simulation (cached under `TEMZOO_HOME/lessons`). Without the zoo model the first "
        "lesson a student opens also trains the stand-in model once (row '-', measured with `--standin`).",
        "",
    ]
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
