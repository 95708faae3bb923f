"""scripts/recipes/large_base.py: the large base trains in resumable chunks (real steps on a tiny set, CPU); a run
is never restarted by accident; the chunk that uses up the total budget publishes a card listing every chunk."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.recipes import run_recipe
from tests.trainsets import write_disc_set



def _recipe(*args: str) -> subprocess.CompletedProcess:
    return run_recipe("large_base", *args)


def test_large_base_runs_in_chunks_and_resumes(tmp_path):
    write_disc_set(tmp_path / "set", n=4, size=64)
    work = tmp_path / "work"
    common = ["--work", str(work), "--set", str(tmp_path / "set"), "--device", "cpu", "--steps-per-epoch", "3",
              "--tile-size", "32", "--batch-size", "2", "--total-minutes", "1"]
    # Chunk 1: a chunk of ~0 minutes still finishes one epoch, then stops and keeps its state.
    r = _recipe(*common, "--minutes", "0.001")
    assert r.returncode == 0, r.stderr[-3000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["chunk"]["stopped"] == "cancelled" and last["next"].startswith("run again with --resume")
    assert last["chunk"]["epochs"] == [0, 1]
    assert (work / "run" / "last" / "state.json").is_file()
    saved = json.loads((work / "recipe.json").read_text())["config"]
    assert saved["size"] == "large" and saved["minutes"] == 1 and saved["clock"] == "wall"

    # Without --resume the earlier run is not thrown away.
    r = _recipe(*common, "--minutes", "0.001")
    assert r.returncode != 0 and "holds an earlier run: pass --resume" in r.stderr
    assert len((work / "chunks.jsonl").read_text().splitlines()) == 1

    # Chunk 2 continues at epoch 1 and runs until the total budget is used: the base is published.
    r = _recipe(*common, "--minutes", "5", "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["chunk"]["epochs"][0] == 1 and last["chunk"]["epochs"][1] > 1
    assert last["chunk"]["stopped"] == "time"
    out = Path(last["published"])
    config = json.loads((out / "config.json").read_text())
    assert config["encoder_depth"] == 5 and config["encoder_weights"] is None
    prov = json.loads((out / "temzoo.json").read_text())["provenance"]
    assert prov["size"] == "large" and prov["chunks"] == 2 and prov["trained_on"][0].startswith("cpu")
    card = (out / "README.md").read_text()
    assert "## Training chunks" in card and "| 2 |" in card and "Trained on: cpu" in card
    metrics = [json.loads(x) for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, len(metrics) + 1))  # one history across the chunks
