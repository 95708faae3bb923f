"""``python -m temzoo inspect PATH [--json]``: the real-space images in a microscope file, with calibration.

``--json`` prints a JSON array with one object per real-space image: ``index, title, shape ([H, W] of one frame),
dtype (as stored in the file), pixel_size_nm (null if uncalibrated), calibrated, frames`` plus the acquisition
metadata found (``voltage_kv, magnification, exposure_s, dwell_time_s, acquisition_mode, microscope, date, ...``).
Entries that are not real-space images (plots, spectra, diffraction patterns, complex FFTs) are left out of the JSON
and listed as "skipped" in the table; a file with none exits 2 with one ``error:`` line.
"""

from __future__ import annotations

import argparse
import json
import sys

from temzoo.commands._args import add_pixel_size_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="microscope file (.dm3 .dm4 .emd .ser .emi .mrc .tif .png .jpg)")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per real-space image")
    add_pixel_size_argument(p, "show the images at this pixel size in nm (what predict/finetune would use with the "
                               "same option); the file's own value is listed as file_pixel_size_nm")


def run(args: argparse.Namespace) -> int:
    from temzoo.io import describe, scan
    from temzoo.io.units import format_nm

    result = scan(args.path)
    result.micrographs = [mg.with_pixel_size(args.pixel_size_nm) for mg in result.micrographs]
    if args.json:
        json.dump([describe(mg) for mg in result.micrographs], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0

    rows = []
    for mg in result.micrographs:
        md = mg.metadata
        shape = "x".join(str(n) for n in mg.shape)
        rows.append([
            str(mg.index), mg.title, shape, str(mg.n_frames), mg.original_dtype, format_nm(mg.pixel_size_nm),
            f"{md['voltage_kv']:g} kV" if "voltage_kv" in md else "",
            f"{md['magnification']:,.0f}x" if "magnification" in md else "",
            str(md.get("microscope", "")), str(md.get("date", "")),
        ])
    header = ["index", "title", "HxW", "frames", "dtype", "pixel size", "voltage", "mag", "microscope", "date"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"{result.source}  ({result.format})")
    for line in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    notes = sorted({f"{k}: {v}" for mg in result.micrographs for k, v in mg.metadata.items()
                    if k in ("calibration_note", "colour")})
    for note in notes:
        print(f"note: {note}")
    for s in result.skipped:
        print(f"skipped {s.line()}")
    return 0
