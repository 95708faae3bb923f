"""Hostile checkpoint folders (issue #12, class 8): mutated temzoo.json, config.json and model.safetensors.

Each batch worker saves one real (seeded, tiny) checkpoint, then every case copies it with one mutation: a field of
``temzoo.json`` or ``config.json`` swapped for a value of the wrong type or range (NaN and Infinity included),
the whole file replaced (a list, a string, a nesting bomb, binary junk), a valid config that does not match the
weights, the safetensors file bit-flipped, truncated, its header length enlarged, its header lying about a shape
or a dtype, NaN/inf weights, and the folder listing beside ``.partial`` and hidden work folders.

Beyond the harness's contract (no traceback, no hang, bounded memory, one line): a folder that loads must give a
usable model (a finite output on a small input) and usable metadata (finite positive pixel size or none, a
normalisation that :func:`temzoo.preprocess.normalize` accepts, class names as strings).

Share of the harness budget: about 40 s on 2 idle cores (~390 cases in one batch: torch is imported once).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.hostile._run import Case, batches, check_batch

RAW = "@@RAW@@"  # a value written as a bare JSON token (NaN, Infinity) that json.dumps cannot produce
ODD_VALUES: list[Any] = [None, "0.5", -1, 0, 1e308, True, [], {}, "x", [1, 2], 10**30, {RAW: "NaN"},
                         {RAW: "Infinity"}]
META_FIELDS = ["pixel_size_nm", "task", "class_names", "normalization", "tile_size", "receptive_field_px",
               "input_downsample", "class_kinds", "description", "provenance", "format_version",
               "normalization.method", "normalization.clip_percentiles", "normalization.clip_percentiles.0",
               "class_names.0"]
CONFIG_FIELDS = ["_model_class", "encoder_name", "encoder_depth", "decoder_channels", "decoder_channels.0",
                 "in_channels", "classes"]
_BASE: dict[str, Path] = {}


# ------------------------------------------------------------------------------------------------ the worker side


def base_checkpoint() -> Path:
    """One real checkpoint per worker (seeded tiny U-Net, 0.05 nm/px, two class kinds recorded)."""
    if "dir" not in _BASE:
        import torch

        from temzoo.zoo.checkpoint import ModelSpec, TemzooMeta, save_checkpoint

        torch.manual_seed(0)
        root = Path(tempfile.mkdtemp(prefix="hostile-ckpt-base-"))
        meta = TemzooMeta(pixel_size_nm=0.05, tile_size=256, class_kinds=["objects"], description="hostile base",
                          provenance={"metrics": {"iou": 0.5}})
        _BASE["dir"] = save_checkpoint(ModelSpec().build().eval(), root / "base", meta)
    return _BASE["dir"]


def _dumps(doc: Any) -> str:
    """JSON text with ``{RAW: token}`` placeholders written as bare tokens."""
    text = json.dumps(doc)
    for token in ("NaN", "Infinity"):
        text = text.replace(json.dumps({RAW: token}), token)
    return text


def _swap(doc: dict, dotted: str, value: Any) -> dict:
    doc = json.loads(json.dumps(doc))
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node = doc
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return doc


def _weights_bytes(data: bytes, item: dict[str, Any]) -> bytes:
    """The safetensors file, damaged as the item says."""
    op, rng = item["op"], random.Random(item.get("seed", 0))
    (n,) = struct.unpack("<Q", data[:8])
    b = bytearray(data)
    if op in ("flip-header", "flip-data"):
        pos = rng.randrange(8, 8 + n) if op == "flip-header" else rng.randrange(8 + n, len(b))
        b[pos] ^= 1 << rng.randrange(8)
    elif op == "truncate":
        del b[rng.randrange(1, len(b)):]
    elif op == "enlarge":
        b[:8] = struct.pack("<Q", item["value"])
    elif op in ("lie-shape", "lie-dtype"):
        header = json.loads(data[8:8 + n])
        key = sorted(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 4)[item["seed"]]
        if op == "lie-shape":  # same number of bytes, another layout: safetensors itself accepts it
            header[key]["shape"] = list(reversed(header[key]["shape"]))
        else:
            header[key]["dtype"] = item["value"]
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        return struct.pack("<Q", len(text)) + text + data[8 + n:]
    elif op == "junk":
        b += b"\x00" * 16
    elif op == "empty":
        return b""
    return bytes(b)


def _nonfinite(item: dict[str, Any]) -> None:
    """Rewrite the weights with NaN/inf where the item says."""
    import torch
    from safetensors.torch import load_file, save_file

    path = Path(item["_dir"]) / "model.safetensors"
    state = load_file(str(path))
    which = item["which"]
    for k in sorted(state):
        t = state[k]
        if not t.is_floating_point():
            continue
        if which == "all" or (which == "one-inf" and t.ndim == 4) or (which == "bn-var" and k.endswith("running_var")):
            state[k] = t.clone().fill_(float("inf") if which == "one-inf" else float("nan"))
            if which != "all":
                break
    save_file(state, str(path))


def build_folder(item: dict[str, Any], dst: Path) -> Path:
    """The case's checkpoint folder: the base with the item's one mutation (the weights linked when untouched)."""
    base = base_checkpoint()
    dst.mkdir()
    target = item.get("file")
    for f in base.iterdir():
        if f.name == "model.safetensors" and target != "weights":
            os.symlink(f, dst / f.name)
        else:
            shutil.copy(f, dst / f.name)
    if target in ("meta", "config"):
        name = "temzoo.json" if target == "meta" else "config.json"
        doc = json.loads((base / name).read_text())
        if "text" in item:
            (dst / name).write_bytes(bytes.fromhex(item["text"]))
        else:
            (dst / name).write_text(_dumps(_swap(doc, item["field"], item["value"])))
    elif target == "weights":
        if item["op"] == "nonfinite":
            _nonfinite({**item, "_dir": str(dst)})
        else:
            (dst / "model.safetensors").write_bytes(_weights_bytes((base / "model.safetensors").read_bytes(), item))
    elif target == "folder":
        _folder_oddity(item["op"], dst)
    return dst


def _folder_oddity(op: str, dst: Path) -> None:
    if op == "no-weights":
        (dst / "model.safetensors").unlink()
    elif op == "no-config":
        (dst / "config.json").unlink()
    elif op == "no-meta":
        (dst / "temzoo.json").unlink()
    elif op == "weights-dir":
        (dst / "model.safetensors").unlink()
        (dst / "model.safetensors").mkdir()
    elif op == "pickle-beside":
        (dst / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")


def checkpoint_case(item: dict[str, Any]) -> None:
    """Batch function: load the mutated folder; if it loads, the model and its metadata must be usable.

    ``temzoo.json`` cases go through :func:`temzoo.zoo.meta.read_meta` (what the loader and the zoo listing call);
    building the network for each of them would only repeat the clean case.
    """
    if item.get("file") == "listing":
        return _listing_case()
    import torch

    from temzoo.zoo.checkpoint import load_checkpoint
    from temzoo.zoo.meta import read_meta

    with tempfile.TemporaryDirectory(prefix="hostile-ckpt-") as tmp:
        folder = build_folder(item, Path(tmp) / "m")
        if item.get("file") == "meta":
            return _check_meta(read_meta(folder))
        ck = load_checkpoint(folder)
        _check_meta(ck.meta)
        if item.get("op") in ("flip-data", "lie-dtype"):
            return  # finite but different weights: no loader can tell them from trained ones
        with torch.no_grad():
            y = ck.model(torch.zeros(1, ck.spec.in_channels, 32, 32))
        if not bool(torch.isfinite(y).all()):
            raise AssertionError("the checkpoint loaded but predicts non-finite values")


def _check_meta(m: Any) -> None:
    import numpy as np

    from temzoo.preprocess import normalize

    px = m.pixel_size_nm
    if px is not None and not (isinstance(px, float) and np.isfinite(px) and px > 0):
        raise AssertionError(f"pixel size {px!r} accepted")
    if not np.isfinite(normalize(np.arange(64.0).reshape(8, 8), m.norm)).all():
        raise AssertionError(f"normalisation {m.normalization!r} accepted")
    if not all(isinstance(c, str) for c in m.class_names) or not isinstance(m.tile_size, int):
        raise AssertionError(f"class names {m.class_names!r} / tile size {m.tile_size!r} accepted")
    if not (isinstance(m.input_downsample, float) and np.isfinite(m.input_downsample) and m.input_downsample > 0):
        raise AssertionError(f"input_downsample {m.input_downsample!r} accepted")


def _listing_case() -> None:
    """A killed install's ``.partial`` folder and hidden work folders beside a good model: only the model is listed."""
    from temzoo.zoo.sources import list_models

    base = base_checkpoint()
    with tempfile.TemporaryDirectory(prefix="hostile-home-") as home:
        old = os.environ.get("TEMZOO_HOME")
        os.environ["TEMZOO_HOME"] = home
        try:
            zoo = Path(home) / "zoo"
            for name in (".good.123.partial", "good.partial", ".good.old-123", ".hidden", "good"):
                shutil.copytree(base, zoo / name)
            local = sorted(m.id for m in list_models(hub=False) if m.source == "local")
        finally:
            if old is None:
                os.environ.pop("TEMZOO_HOME", None)
            else:
                os.environ["TEMZOO_HOME"] = old
    if local != ["good"]:
        raise AssertionError(f"listed as models: {local}")


# ------------------------------------------------------------------------------------------------ the cases


def _short(v: Any) -> str:
    return (v[RAW] if isinstance(v, dict) and RAW in v else repr(v))[:20]


def metadata_cases() -> list[Case]:
    cases = [Case("clean", {"file": "none"}, 8, expect="ok")]
    for f in META_FIELDS:
        cases += [Case(f"meta-{f}={_short(v)}", {"file": "meta", "field": f, "value": v}, 8) for v in ODD_VALUES]
    for f in CONFIG_FIELDS:
        cases += [Case(f"config-{f}={_short(v)}", {"file": "config", "field": f, "value": v}, 8) for v in ODD_VALUES]
    big = {"decoder_channels": [8192] * 3, "encoder_name": "tu-vit_giant_patch14_224", "_model_class": "DPT"}
    cases += [Case(f"config-big-{k}", {"file": "config", "field": k, "value": v}, 8, expect="error",
                   match="config.json") for k, v in big.items()]
    texts = {"list": b"[]", "string": b'"unet"', "number": b"1", "null": b"null", "empty": b"",
             "bomb": b"[" * 100_000 + b"]" * 100_000, "junk": bytes(range(256)), "cut": b'{"pixel_size_nm": 0.',
             "utf16": '{"task": "segmentation"}'.encode("utf-16")}
    for target in ("meta", "config"):
        cases += [Case(f"{target}-text-{k}", {"file": target, "text": v.hex()}, 8, expect="error",
                       match="temzoo.json" if target == "meta" else "config.json") for k, v in texts.items()
              if k != "utf16"]
        # JSON in UTF-16 is still JSON (Python's reader detects it): read exactly or refused, either is right
        cases.append(Case(f"{target}-text-utf16", {"file": target, "text": texts["utf16"].hex()}, 8))
    other = {"resnet34": {"encoder_name": "resnet34"}, "classes3": {"classes": 3}, "in3": {"in_channels": 3},
             "dec128": {"decoder_channels": [128, 64, 32]}, "depth4": {"encoder_depth": 4},
             "unetpp": {"_model_class": "UnetPlusPlus"}}
    for k, change in other.items():  # valid configs that do not describe these weights
        field, value = next(iter(change.items()))
        if k == "depth4":
            item = {"file": "config", "field": "decoder_channels", "value": [64, 32, 16, 8]}
            cases.append(Case("config-mismatch-depth4-dec4", item, 8, expect="error"))
            continue
        cases.append(Case(f"config-mismatch-{k}", {"file": "config", "field": field, "value": value}, 8,
                          expect="error", match="does not match"))
    return cases


def weights_cases() -> list[Case]:
    cases = []
    for op, n in (("flip-header", 30), ("flip-data", 8), ("truncate", 12)):
        cases += [Case(f"weights-{op}-{s}", {"file": "weights", "op": op, "seed": s}, 8,
                       expect="error" if op == "truncate" else "any") for s in range(n)]
    for v in (2**63 - 1, 2**40, 7):
        cases.append(Case(f"weights-enlarge-{v}", {"file": "weights", "op": "enlarge", "value": v}, 8, expect="error"))
    for s in range(4):
        cases.append(Case(f"weights-lie-shape-{s}", {"file": "weights", "op": "lie-shape", "seed": s}, 8,
                          expect="error", match="does not match"))
    for s, dt in enumerate(("I32", "F16", "BOOL", "U8")):
        cases.append(Case(f"weights-lie-dtype-{dt}", {"file": "weights", "op": "lie-dtype", "seed": s, "value": dt},
                          8))
    for which in ("all", "one-inf", "bn-var"):
        cases.append(Case(f"weights-nonfinite-{which}", {"file": "weights", "op": "nonfinite", "which": which}, 8,
                          expect="error", match="non-finite weights"))
    cases += [Case(f"weights-{op}", {"file": "weights", "op": op}, 8, expect="error") for op in ("junk", "empty")]
    for op, expect in (("no-weights", "error"), ("no-config", "error"), ("no-meta", "ok"), ("weights-dir", "error"),
                       ("pickle-beside", "error")):
        cases.append(Case(f"folder-{op}", {"file": "folder", "op": op}, 8, expect=expect))
    cases.append(Case("listing-partial-and-hidden", {"file": "listing"}, 8, expect="ok"))
    return cases


CASES = metadata_cases() + weights_cases()
if Path(sys.argv[0]).name == "_run.py":
    # In the batch worker: torch's import and the base checkpoint happen here, before the first case's time limit
    # starts (an alarm inside torch's import would leave it half-initialised for every later case).
    base_checkpoint()


def test_enough_cases():
    assert len(CASES) >= 350, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("group", batches(CASES, size=500, prefix="checkpoints-"))
def test_hostile_checkpoints(group):
    check_batch("tests.hostile.test_checkpoints:checkpoint_case", group,
                "class 8: checkpoints (temzoo.json, config.json, safetensors, listing)")
