"""scripts/recipes/tem_denoise.py --corruption mask: masked-reconstruction pretraining end to end on the real
unlabelled micrographs (one epoch), published with a card that says what it measured; never into the bundled zoo."""

from __future__ import annotations

import json

from tests.recipes import run_recipe


def test_masked_reconstruction_recipe_publishes_an_honest_base(tmp_path):
    r = run_recipe("tem_denoise", "--corruption", "mask", "--epochs", "1", "--work", str(tmp_path / "w"))
    assert r.returncode != 0 and "needs --out" in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr
    assert not (tmp_path / "w").exists()  # refused before anything was written

    out = tmp_path / "tem-masked"
    r = run_recipe("tem_denoise", "--corruption", "mask", "--epochs", "1", "--sim", "4", "--work",
                   str(tmp_path / "w"), "--out", str(out), "--device", "cpu", "--cpu-threads", "1", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((out / "temzoo.json").read_text())
    prov = meta["provenance"]
    assert meta["task"] == "denoising" and prov["config"]["corruption"] == "mask"
    assert prov["recipe"].endswith("--corruption mask") and "masked-reconstruction" in prov["tags"]
    kinds = {row["kind"] for row in prov["psnr_by_kind_and_dose"]}
    assert kinds == {"real BF-TEM", "real STEM", "simulated HRTEM"}
    assert all(row["dose"] == "masked" for row in prov["psnr_by_kind_and_dose"])
    card = (out / "README.md").read_text()
    assert "SimMIM" in card and "hidden pixels" in card and "inpainter" in card
