"""Hostile inputs of issue #12, classes 2 (reads that hang or exhaust memory), 5 (absurd arguments) and 6 (file names
and error lines), generated in bulk and run in batches through tests/hostile/_run.py.

- mutated real files: every format temzoo reads (DM3/DM4/TIFF/PNG/JPEG/SER/EMD/MRC) from ../shared/data, with bytes
  flipped anywhere or in the header, 4-byte length fields enlarged, runs zeroed, truncated; read through the CLI's
  path (``scan``) and the app's upload path (``scan_bytes``). Built inside the worker from (file, kind, seed), so a
  failure names a case that can be rebuilt.
- bombs: deflate TIFFs that expand to GiB, PNG/TIFF headers declaring huge dimensions, a 400-frame stack.
- odd file types: FIFO, folder, symlink loop, dangling symlink, /dev/zero and /dev/null, a socket, an empty file;
  given to every command where it opens a path (image, mask folder, COCO json, model files, push folder).
- odd names: a leading ``-``, newline / tab / ESC / CR, unicode, 250 bytes; each through inspect and predict.
- absurd arguments: every numeric option of every command (NaN, infinities, 1e300, 2**64, text, negatives, ...),
  and the same numbers in the config dataclasses (what a job folder's state holds).

Contract per case (see _run.py): it works, or it is refused in ONE ``error:`` line; never a traceback, a hang, a
memory blow-up or a lost file. The budget of this module: :data:`MODULE_BUDGET_S` (part of HARNESS_BUDGET_S).
"""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import socket
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.hostile._run import (
    Case, assert_clean, assert_kept, batches, check_batch, record, run_cli, snapshot,
)

# This module's share of HARNESS_BUDGET_S: 2041 cases, measured 64 s on the 2-core development machine when idle and
# 682 s while ~6 other test runs shared it (one-off warm-ups per worker: torch, HyperSpy, a model).
MODULE_BUDGET_S = 240
SHARED = Path(os.environ.get("TEMZOO_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
# Real files to mutate: one or two per reader (small ones: each case is a parse in a forked child).
SOURCES = [
    "dm/rosettasciio/2D/test-1.dm3", "dm/rosettasciio/2D/test-1.dm4", "dm/rosettasciio/3D/test-1.dm3",
    "dm/rosettasciio/3D/test-2.dm4", "dm/ncempy/dmTest_float32_nonSquare_diffPixelSize.dm3",
    "dm/ncempy/dmTest_float32_nonSquare_diffPixelSize.dm4", "dm/rosettasciio/Fei HAADF-UK_location.dm3",
    "dm/rosettasciio/test_stackbuilder_imagestack.dm3", "other-formats/ncempy/temp.mrc",
    "other-formats/ncempy/16_STOimage_1.ser", "other-formats/scifidatasets/EMDReader_Image_FEI.emd",
    "labeled/steel-dislocation-loops/images/1.png", "unlabeled/ti-insitu-bf/Chip-4-Heat-1-Frame-124.jpg",
]
KINDS = ("flip", "flip-head", "enlarge", "zero-run", "truncate")
VARIANTS_PER_KIND = 4  # x 5 kinds x 15 files (13 + 2 TIFFs made from real data) = 300 mutated files
READ = "tests.hostile.test_inputs:read_case"
CLI = "tests.hostile._run:cli_in_process"

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real data folder {SHARED} is absent")


# =============================================================================================== class 2: reading


def mutate(data: bytes, kind: str, seed: int) -> bytes:
    """A damaged copy of ``data``: deterministic in (kind, seed)."""
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    n = len(b)
    if kind == "flip":  # 1..16 bits anywhere
        for i in rng.integers(0, n, int(rng.integers(1, 17))):
            b[i] ^= 1 << int(rng.integers(8))
    elif kind == "flip-head":  # 1..8 bytes in the first 2 kB: tag tables, IFDs, chunk headers
        for i in rng.integers(0, min(n, 2048), int(rng.integers(1, 9))):
            b[i] = int(rng.integers(256))
    elif kind == "enlarge":  # small 4-byte integers (lengths, counts, offsets, dims) made huge, either byte order
        _enlarge(b, rng)
    elif kind == "zero-run":
        at, size = int(rng.integers(0, n)), int(rng.integers(64, 4097))
        b[at:at + size] = bytes(len(b[at:at + size]))
    elif kind == "truncate":
        b = b[:int(rng.integers(1, n))]
    return bytes(b)


def _enlarge(b: bytearray, rng: np.random.Generator) -> None:
    head = min(len(b) - 4, 65536)
    words = np.frombuffer(bytes(b[:head - head % 4]), dtype="<u4")
    for order, vals in (("<", words), (">", words.byteswap())):
        idx = np.flatnonzero((vals >= 1) & (vals <= 1 << 20))
        for i in (rng.choice(idx, size=min(len(idx), 3), replace=False) if len(idx) else []):
            big = int(rng.choice([0x7FFFFFFF, 0xFFFFFFFF, 0x10000000, int(vals[i]) * 4096 % 2**32]))
            b[4 * i:4 * i + 4] = struct.pack(f"{order}I", big)


def read_case(item: dict) -> None:
    """Batch function: build the case's file and read it through the CLI path or the upload path."""
    from temzoo.io import scan, scan_bytes

    if "bomb" in item:
        data, name = _bomb(item)
    else:
        data = mutate(Path(item["src"]).read_bytes(), item["kind"], item["seed"])
        name = Path(item["src"]).name
    if item["via"] == "upload":
        scan_bytes(data, name)
        return
    with tempfile.TemporaryDirectory(prefix="hostile-read-") as tmp:
        p = Path(tmp) / name
        p.write_bytes(data)
        scan(p)


def _tiff_from_real(dst: Path) -> list[Path]:
    """Two TIFFs made from real data (the data folder has none): one image, one 3-page stack."""
    import tifffile

    from temzoo.io import read_micrograph

    img = read_micrograph(SHARED / "other-formats/ncempy/temp.mrc").data
    one, stack = dst / "real_image.tif", dst / "real_stack.tif"
    tifffile.imwrite(one, np.asarray(img[0] if img.ndim == 3 else img, np.float32))
    tifffile.imwrite(stack, np.asarray(img, np.float32).reshape(-1, *img.shape[-2:])[:3], compression="zlib")
    return [one, stack]


def mutated_cases(tiff_dir: Path) -> list[Case]:
    files = [SHARED / s for s in SOURCES] + _tiff_from_real(tiff_dir)
    cases = []
    for f in files:
        for kind in KINDS:
            for k in range(VARIANTS_PER_KIND):
                seed = zlib.crc32(f"{f.name}#{kind}#{k}".encode())
                cases.append(Case(f"{f.name}:{kind}:{k}", {"src": str(f), "kind": kind, "seed": seed,
                                                          "via": "upload" if k % 4 == 3 else "path"}, 2))
    return cases


# --------------------------------------------------------------------------------------- bombs


def _png(width: int, height: int, rows: int, depth: int = 8, colour: int = 0) -> bytes:
    """A PNG declaring width x height whose IDAT holds ``rows`` rows of zeros (fewer rows: a truncated image)."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    row = 1 + width * max(1, depth // 8) * (3 if colour == 2 else 1)
    body = zlib.compressobj(1)
    raw = body.compress(bytes(row) * rows) + body.flush() if rows else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def _tiff_declaring(width: int, height: int, pages: int = 1) -> bytes:
    """A classic TIFF whose IFDs declare width x height uint8 strips that are not there (8 bytes of data)."""
    out = bytearray(b"II*\x00")
    ifd_at = 8 + 8
    out += struct.pack("<I", ifd_at) + bytes(8)
    for p in range(pages):
        tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, min(width * height, 2**32 - 1))]
        nxt = ifd_at + 2 + 12 * len(tags) + 4
        out += struct.pack("<H", len(tags))
        for tag, typ, count, value in tags:
            out += struct.pack("<HHII", tag, typ, count, value) if typ == 4 else struct.pack("<HHIHH", tag, typ,
                                                                                                 count, value, 0)
        out += struct.pack("<I", nxt if p < pages - 1 else 0)
        ifd_at = nxt
    return bytes(out)


def _deflate_tiff(side: int, pages: int) -> bytes:
    import io

    import tifffile

    buf = io.BytesIO()
    z = np.zeros((side, side), np.uint8)
    with tifffile.TiffWriter(buf) as tw:
        for _ in range(pages):
            tw.write(z, compression="zlib", compressionargs={"level": 1}, contiguous=False)
    return buf.getvalue()


@functools.lru_cache(maxsize=4)
def _bomb_bytes(kind: str, a: tuple) -> tuple[bytes, str]:
    if kind == "png":
        return _png(*a), "bomb.png"
    if kind == "tiff-dims":
        return _tiff_declaring(*a), "bomb.tif"
    return _deflate_tiff(*a), "bomb.tif"


def _bomb(item: dict) -> tuple[bytes, str]:
    return _bomb_bytes(item["bomb"], tuple(item["args"]))  # the path and upload cases of a bomb run one after another


def bomb_cases() -> list[Case]:
    gib = r"GiB|memory|too large|pixels|decompression bomb|corrupt|truncated"
    specs = [("png", [65535, 65535, 0], "error"), ("png", [2**31 - 1, 1, 0], "error"), ("png", [1, 2**31 - 1, 0], "error"),
             ("png", [30000, 30000, 16], "error"), ("png", [6000, 6000, 6000, 16], "any"),
             ("png", [100, 100, 7], "any"), ("tiff-dims", [2**31 - 1, 2**31 - 1], "error"),
             ("tiff-dims", [65536, 65536], "error"), ("tiff-dims", [100000, 3], "error"),
             ("tiff-dims", [20000, 20000, 50], "error"), ("tiff-dims", [4096, 4096, 400], "any"),
             ("deflate", [4096, 24], "error"), ("deflate", [8192, 6], "error"), ("deflate", [16384, 2], "error")]
    return [Case(f"{k}:{'x'.join(map(str, a))}:{via}", {"bomb": k, "args": a, "via": via}, 2,
                 expect=e, match=gib if e == "error" else None)
            for k, a, e in specs for via in ("path", "upload")]


# --------------------------------------------------------------------------------------- odd file types


def odd_files(root: Path) -> dict[str, Path]:
    """One of each odd file type, named like an image (.dm4/.png) or a COCO file (.json)."""
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for ext in (".dm4", ".png", ".json", ".tif"):
        os.mkfifo(root / f"fifo{ext}")
        out[f"fifo{ext}"] = root / f"fifo{ext}"
        (root / f"folder{ext}").mkdir()
        out[f"folder{ext}"] = root / f"folder{ext}"
        os.symlink(root / f"loop_b{ext}", root / f"loop_a{ext}")
        os.symlink(root / f"loop_a{ext}", root / f"loop_b{ext}")
        out[f"symlink-loop{ext}"] = root / f"loop_a{ext}"
        os.symlink(root / "nowhere", root / f"dangling{ext}")
        out[f"dangling{ext}"] = root / f"dangling{ext}"
        os.symlink("/dev/zero", root / f"zero{ext}")
        out[f"dev-zero{ext}"] = root / f"zero{ext}"
        (root / f"empty{ext}").write_bytes(b"")
        out[f"empty{ext}"] = root / f"empty{ext}"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "socket.dm4"))  # the socket file stays after close
    sock.close()
    out["socket.dm4"] = root / "socket.dm4"
    out["/dev/null"] = Path("/dev/null")
    return out


def odd_type_cases(root: Path, ckpt: Path, image: Path) -> list[Case]:
    """Each odd file where every command opens a path: the image, a file in an images/masks folder, the COCO
    json, each of a model folder's files, the folder given to push."""
    files = odd_files(root / "odd")
    out = root / "out"
    cases = []
    for name, f in files.items():
        ext = f.suffix or ".dm4"
        if ext in (".dm4", ".png", ".tif"):
            cases += [Case(f"inspect:{name}", {"argv": ["inspect", str(f)]}, 2, "error"),
                      Case(f"predict:{name}", {"argv": ["predict", str(f), "--model", str(ckpt), "--out",
                                                        str(out / "p")]}, 2, "error")]
        elif ext == ".json":
            imgs = _folder_with(root / f"coco-{name}", image)
            cases.append(Case(f"finetune-coco:{name}", {"argv": [
                "finetune", "--images", str(imgs), "--masks", str(f), "--base", str(ckpt), "--strategy", "full",
                "--out", str(out / f"f-{name}"), "--epochs", "1", "--quiet"]}, 2, "error"))
        # the odd file inside an images folder (next to a good image) and a masks folder, and as a model's file
        imgs = _folder_with(root / f"imgs-{name}", image, odd=f)
        cases += [
            Case(f"evaluate-images:{name}", {"argv": ["evaluate", "--model", str(ckpt), "--images", str(imgs),
                                                      "--masks", str(imgs)]}, 2),
        ]
    for fname in ("model.safetensors", "config.json", "temzoo.json"):
        for name in ("fifo.dm4", "folder.dm4", "symlink-loop.dm4", "dev-zero.dm4", "socket.dm4", "/dev/null"):
            bad = root / f"ckpt-{fname}-{name.strip('/').replace('/', '-')}"
            shutil.copytree(ckpt, bad)
            (bad / fname).unlink()
            _clone_odd(files[name], bad / fname)
            cases += [Case(f"predict-model:{fname}:{name}", {"argv": ["predict", str(image), "--model", str(bad),
                                                                      "--out", str(out / "m")]}, 2, "error"),
                      Case(f"push:{fname}:{name}", {"argv": ["push", str(bad), "--repo", "me/x"]}, 2, "error")]
    return cases


def _folder_with(folder: Path, image: Path, odd: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(image, folder / image.name)
    if odd is not None:
        _clone_odd(odd, folder / ("odd" + (odd.suffix or ".dm4")))
    return folder


def _clone_odd(src: Path, dst: Path) -> None:
    """The same odd thing at ``dst``: FIFOs and folders are made anew, links and sockets re-pointed."""
    if src.is_symlink() or str(src).startswith("/dev/") or src.name.startswith("socket"):
        os.symlink(os.readlink(src) if src.is_symlink() else src, dst)
    elif src.is_dir():
        dst.mkdir()
    elif not src.exists() or src.stat().st_size == 0 and src.is_file():
        dst.write_bytes(b"")
    else:
        os.mkfifo(dst)


# ================================================================================================ class 6: names

ODD_NAMES = {
    "dash": "-x.dm3", "dashdash": "--help.dm3", "dash-space": "- x.dm3", "newline": "a\nb.dm3", "tab": "a\tb.dm3",
    "cr": "a\rb.dm3", "esc": "a\x1b[31mred.dm3", "bell": "a\x07.dm3", "unicode": "Au_ナノ粒子_ü.dm3",
    "rtl": "x\u202eevil.dm3", "long": "L" * 240 + ".dm3", "spaces": "  a b  .dm3", "quote": "a'\"b.dm3",
    "glob": "a[1]*?.dm3", "percent": "%s%n.dm3", "backslash": "a\\b.dm3",
}


def odd_name_cases(root: Path, ckpt: Path, dm3: Path) -> list[Case]:
    """Each odd name as an existing image and as a missing one, through inspect and predict (and after --)."""
    cases = []
    folder = root / "names"
    folder.mkdir()
    for key, name in ODD_NAMES.items():
        shutil.copy(dm3, folder / name)
        dash = name.startswith("-") and " " not in name  # argparse takes "- x" (with a space) for a value
        how = r"--|\./" if dash else None
        predict = ["predict", "--model", str(ckpt), "--out", str(root / f"o-{key}")]
        # a real prediction costs seconds: predict takes three of the names, inspect all of them
        for cmd in (["inspect"], predict) if key in ("dash", "newline", "unicode") else (["inspect"],):
            argv_rel = [*cmd, name] if cmd[0] == "inspect" else [cmd[0], name, *cmd[1:]]
            cases += [
                # relative name as typed in the folder: works, or (leading '-') one line saying how to pass it
                # (predict's verdict on this tiny image is the model's business: "any"; inspect must read it)
                Case(f"{cmd[0]}:{key}", {"argv": argv_rel, "cwd": str(folder)}, 6,
                     "error" if dash else "ok" if cmd[0] == "inspect" else "any", how if dash else None),
                Case(f"{cmd[0]}:{key}:after--", {"argv": [*cmd, "--", name], "cwd": str(folder)}, 6,
                     "ok" if cmd[0] == "inspect" else "any"),
                Case(f"{cmd[0]}:{key}:missing", {"argv": [*cmd, "--", "no" + name], "cwd": str(folder)}, 6,
                     "error", r"no such file|no file matches"),
            ]
        cases.append(Case(f"evaluate-images:{key}", {"argv": ["evaluate", "--model", str(ckpt), "--images",
                                                               name + "-dir", "--masks", "m"], "cwd": str(folder)},
                          6, "error", how))
    return cases


# ================================================================================================ class 5: numbers

# Refused by every numeric option: not finite, absurdly large, or not a number at all.
ALWAYS_BAD = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "1e300", "-1e300", str(2**64), "9" * 400,
              "abc", "", "0x10", "1e", "1,5"]
ODD = ["-1", "0", "-0", "1e-300", "0.5", "1.5", "7", " 3", "+3", "1_0", "3.0"]
# option -> (extra values that must be refused, commands that have it)
NUMERIC = {
    "--mc-dropout": (["-1", "100000"], ["predict"]),
    "--image-index": (["-1", "100000000"], ["predict"]),
    "--frame": (["-1", "1.5"], ["predict"]),
    "--workers": (["-1", "100000"], ["predict"]),
    "--threads": (["0", "-1", "100000"], ["predict"]),
    "--pixel-size-nm": (["0", "-1", "-0", "1e-300"], ["predict", "evaluate", "finetune", "pretrain-denoise"]),
    "--epochs": (["0", "-1", "1.5"], ["finetune", "pretrain-denoise"]),
    "--minutes": (["0", "-1"], ["finetune", "pretrain-denoise"]),
    "--seed": (["-1", str(2**32), "1.5"], ["finetune", "pretrain-denoise", "simulate"]),
    "--tile-size": (["0", "-1", "1.5", "100000"], ["finetune", "pretrain-denoise"]),
    "--batch-size": (["0", "-1", "1.5", "100000000"], ["finetune", "pretrain-denoise"]),
    "--lr": (["0", "-1", "1e6"], ["finetune", "pretrain-denoise"]),
    "--downsample": (["0", "-1", "1e6"], ["finetune", "pretrain-denoise"]),
    "--val-fraction": (["-1", "1", "2"], ["finetune"]),
    "--noise": (["-1", "2"], ["finetune"]),
    "--n": (["0", "-1", "1.5"], ["simulate"]),
    "--pixel-size-nm ": (["0", "-1"], ["simulate"]),  # simulate's own (detector) pixel size
    "--size": (["0", "-1", "1.5", "100000"], ["simulate"]),
    "--variants": (["0", "-1"], ["simulate"]),
    "--voltage-kv": (["0", "-1", "-300"], ["simulate"]),
    "--cs-mm": (["1e6"], ["simulate"]),
    "--focal-spread-nm": (["-1"], ["simulate"]),
    "--blur-px": (["-1", "-0.5"], ["simulate"]),
    "--label-threshold": (["0", "-1"], ["simulate"]),
    "--dose": (["0", "-1", "0:0", "5:1", "nan:5", "1:inf", "1:2:3", ":", "-5:5"], ["simulate"]),
    "--defocus": (["inf:0", "1e300", "5:1", "nan"], ["simulate"]),
    "--particles": (["0:0", "0", "5:1", "1.5:3", "-1:2", "1:1e9"], ["simulate"]),
    "--diameter-nm": (["0:0", "0", "5:1", "-1:2", "nan:2"], ["simulate"]),
    "--carbon-nm": (["-1:2", "5:1", "-1", "inf"], ["simulate"]),
}


def _base_argv(cmd: str, root: Path, ckpt: Path) -> list[str]:
    """A command line that fails fast AFTER its arguments are checked (a missing input, an unknown material), so
    an accepted value costs milliseconds and a refusal must name the option to count as the option's."""
    missing = str(root / "missing")
    out = str(root / "out-args")
    return {
        "predict": ["predict", missing + ".dm3", "--model", str(ckpt), "--out", out],
        "evaluate": ["evaluate", "--model", missing, "--images", missing, "--masks", missing],
        "finetune": ["finetune", "--images", missing, "--masks", missing, "--base", "scratch", "--strategy", "full",
                     "--out", out, "--quiet"],
        "pretrain-denoise": ["pretrain-denoise", "--images", missing, "--out", out, "--quiet"],
        "simulate": ["simulate", "--out", out, "--n", "1", "--material", "Unobtainium", "--quiet"],
    }[cmd]


def argument_cases(root: Path, ckpt: Path) -> list[Case]:
    cases = []
    for opt, (bad, commands) in NUMERIC.items():
        flag = opt.strip()
        for cmd in commands:
            base = _base_argv(cmd, root, ckpt)
            if flag == "--n":
                base = [a for a in base if a not in ("--n", "1")]
            # --workers N > 0 starts a dask cluster (seconds): only its refusals are cheap enough here
            odd = [] if flag == "--workers" else ODD
            for v in dict.fromkeys(ALWAYS_BAD + bad + odd):
                if v == "1,5" and flag in ("--dose", "--defocus"):
                    continue  # a list of two values there
                refused = v in ALWAYS_BAD or v in bad
                # --dose/--defocus take lists too: "1:2:3" / ":" are refused by their parser, named either way
                cases.append(Case(f"{cmd}{flag}={v[:20]!r}", {"argv": [*base, f"{flag}={v}"]}, 5,
                                  "error" if refused else "any", re.escape(flag) if refused else None))
    for repo in ("", "a", "a/b/c", "../x", "x" * 300, "me/\nx", "-x/y"):
        cases.append(Case(f"push--repo={repo[:12]!r}", {"argv": ["push", str(ckpt), f"--repo={repo}"]}, 5, "error"))
    cases += [Case(f"zoo:{' '.join(a)}", {"argv": ["zoo", *a]}, 5, e)
              for a, e in ((["list", "--no-hub", "--json"], "ok"), (["list", "--bogus"], "error"),
                           (["remove"], "error"), ([], "error"))]
    return cases


def config_case(item: dict) -> None:
    """Batch function: a config dataclass built from (hostile) JSON, as a job folder's state would hold it."""
    from temzoo.simulate.dataset import SimulationConfig
    from temzoo.train.config import TrainConfig

    if item["cls"] == "train":
        TrainConfig.from_dict({"images": "x", "masks": "y", **item["fields"]}).validate()
    else:
        SimulationConfig(**item["fields"]).validate()


TRAIN_NUMBERS = ["epochs", "minutes", "pixel_size_nm", "seed", "batch_size", "tile_size", "lr", "val_fraction",
                 "l2_lambda", "l2sp_alpha", "l2sp_beta", "patience", "target_pixel_size_nm", "downsample",
                 "weight_decay", "warmup_fraction", "min_lr_fraction", "base_lr_factor", "steps_per_epoch",
                 "freeze_bn_below", "unfreeze_every", "scale_jitter", "intensity_jitter", "noise_probability",
                 "cpu_threads"]
SIM_NUMBERS = ["n", "seed", "pixel_size_nm", "size_px", "oversample", "energy_kv", "cs_mm", "focal_spread_nm",
               "aperture_mrad", "blur_px", "label_threshold_rad", "variants_per_field", "max_stacking_faults"]
CONFIG_BAD = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 2**64, "abc", [1], {"a": 1}, True]


def config_cases() -> list[Case]:
    cases = []
    for cls, names in (("train", TRAIN_NUMBERS), ("sim", SIM_NUMBERS)):
        for name in names:
            for v in CONFIG_BAD:
                fields = {name: v}
                # JSON has no NaN/inf: send them as strings the worker turns back into floats
                shown = repr(v)
                cases.append(Case(f"{cls}.{name}={shown[:16]}", {"cls": cls, "fields": _json_safe(fields)}, 5,
                                  "error"))
        ranges = ("dose_range", "n_particles", "diameter_nm", "carbon_nm", "defocus_range") if cls == "sim" else (
            "dose_range",)
        for name in ranges:
            for v in ([float("nan"), 1.0], [1.0, float("inf")], [0, 0], [5, 1], ["a", "b"], [1e300, 1e301]):
                ok_zero = v == [0, 0] and name in ("carbon_nm", "defocus_range")  # no carbon; in focus
                cases.append(Case(f"{cls}.{name}={v!r}", {"cls": cls, "fields": _json_safe({name: v})}, 5,
                                  "any" if ok_zero else "error"))
    for name in ("augment", "base_rescale"):  # switches: only true or false
        for v in ("yes", 1, None, [True]):
            cases.append(Case(f"train.{name}={v!r}", {"cls": "train", "fields": {name: v}}, 5, "error"))
    return cases


def _json_safe(obj):
    """NaN/inf as tagged strings (JSON cannot carry them); config_case_json turns them back."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _unjson(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return {k: _unjson(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unjson(v) for v in obj]
    return obj


def config_case_json(item: dict) -> None:
    config_case({**item, "fields": _unjson(item["fields"])})


# ================================================================================================ the tests


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_checkpoint) -> dict:
    root = tmp_path_factory.mktemp("hostile-inputs")
    image = root / "good.png"
    from PIL import Image

    Image.fromarray(np.asarray(Image.open(SHARED / SOURCES[11]).convert("L"))[:96, :96]).save(image)
    return {"root": root, "ckpt": tiny_checkpoint, "image": image,
            "dm3": SHARED / "dm/rosettasciio/2D/test-1.dm3"}


@pytest.fixture(scope="module")
def mutated(tmp_path_factory) -> list[Case]:
    return mutated_cases(tmp_path_factory.mktemp("tiffs"))


@pytest.mark.parametrize("group", range(3))
def test_mutated_real_files(mutated, group):
    """300 damaged real files (every reader, CLI path and upload path): each read, or one ReadError line."""
    chunk = mutated[group::3]
    check_batch(READ, chunk, "class 2: mutated real files")


def test_bombs():
    """Compression bombs and headers declaring huge images: refused from their headers, or read within the limits.
    On main, the 40-page deflate TIFF took the upload path to several GB (issue #12)."""
    check_batch(READ, bomb_cases(), "class 2: bombs", item_timeout=40)


def test_odd_file_types(work):
    """FIFOs, folders, symlink loops, devices, sockets, empty files wherever a command opens a path."""
    root = work["root"] / "types"
    snap_src = snapshot(work["ckpt"])
    check_batch(CLI, odd_type_cases(root, work["ckpt"], work["image"]), "class 2: odd file types", item_timeout=40)
    assert_kept(snap_src, work["ckpt"])


def test_odd_names(work):
    """Names with a leading '-', control characters, unicode, 240 bytes: they work, or ONE line says how."""
    root = work["root"] / "names"
    root.mkdir()
    cases = odd_name_cases(root, work["ckpt"], work["dm3"])
    before = snapshot(root / "names")
    check_batch(CLI, cases, "class 6: odd file names", item_timeout=40)
    assert_kept(before, root / "names")


@pytest.mark.parametrize("group", range(2))
def test_absurd_arguments(work, group):
    """Every numeric option of every command with NaN, infinities, 1e300, 2**64, text, negatives, ..."""
    cases = argument_cases(work["root"], work["ckpt"])[group::2]
    check_batch(CLI, cases, "class 5: absurd CLI arguments")


def test_absurd_config_numbers():
    """The config dataclasses (what a job's saved state holds) refuse the same numbers, naming the field."""
    check_batch("tests.hostile.test_inputs:config_case_json", config_cases(), "class 5: config numbers")


def test_cold_cli_starts(tmp_path, work):
    """A few cases as a user's shell runs them (a cold ``python -m temzoo``): FIFO, newline name, leading dash."""
    fifo = tmp_path / "pipe.dm4"
    os.mkfifo(fifo)
    assert "FIFO" in assert_clean(run_cli("inspect", str(fifo), timeout=60), "error")
    weird = tmp_path / "a\nb.dm3"
    shutil.copy(work["dm3"], weird)
    line = assert_clean(run_cli("inspect", str(tmp_path / "missing\nname.dm3"), timeout=60), "error")
    assert "missing\\nname.dm3" in line
    assert_clean(run_cli("inspect", str(weird), timeout=60), "ok")
    shutil.copy(work["dm3"], tmp_path / "-x.dm3")
    line = assert_clean(run_cli("inspect", "-x.dm3", cwd=tmp_path, timeout=60), "error")
    assert "--" in line and "./-x.dm3" in line
    assert_clean(run_cli("inspect", "--", "-x.dm3", cwd=tmp_path, timeout=60), "ok")
    record("class 6: cold CLI starts", 5)
