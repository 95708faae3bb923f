"""scripts/recipes/large_base.py: the large base trains in resumable chunks (real steps on a tiny set, CPU); a run
is never restarted by accident; the chunk that uses up the total budget publishes a card listing every chunk."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from safetensors import safe_open

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
    r = _recipe(*common, "--minutes", "5", "--resume", "--cpu-threads", "1")
    finished = datetime.now(timezone.utc)
    assert r.returncode == 0, r.stderr[-3000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    # "started" is when the chunk began (it once held the time the record was written, at the chunk's end).
    started = datetime.fromisoformat(last["chunk"]["started"])
    assert (finished - started).total_seconds() >= last["chunk"]["wall_seconds"] - 1
    assert last["chunk"]["epochs"][0] == 1 and last["chunk"]["epochs"][1] > 1
    assert last["chunk"]["stopped"] == "time"
    assert last["chunk"]["device"] == "cpu (1 threads)"  # --cpu-threads: a chunk picks its threads, not the load
    out = Path(last["published"])
    config = json.loads((out / "config.json").read_text())
    assert config["encoder_depth"] == 5 and config["encoder_weights"] is None
    prov = json.loads((out / "temzoo.json").read_text())["provenance"]
    assert prov["size"] == "large" and prov["chunks"] == 2 and prov["trained_on"][0].startswith("cpu")
    card = (out / "README.md").read_text()
    assert "## Training chunks" in card and "| 2 |" in card and "Trained on: cpu" in card
    metrics = [json.loads(x) for x in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, len(metrics) + 1))  # one history across the chunks
    # Published as float16 by default (the bundled large base ships so): half the bytes, casts back on load.
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16", "I64"}
    assert prov["weights_dtype"] == "float16" and prov["held_out"] == "none"

    # --publish-only publishes the finished run again, here with measured numbers appended to the card.
    (tmp_path / "numbers.md").write_text("## Measured transfer\n\nSome table.\n")
    again = tmp_path / "again"
    r = _recipe("--work", str(work), "--set", str(tmp_path / "set"), "--publish-only", "--out", str(again),
                "--card-md", str(tmp_path / "numbers.md"), "--weights", "float32")
    assert r.returncode == 0, r.stderr[-3000:]
    card = (again / "README.md").read_text()
    assert card.rstrip().endswith("## Measured transfer\n\nSome table.") and "| 2 |" in card
    with safe_open(str(again / "model.safetensors"), framework="pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F32", "I64"}
    assert (work / "run" / "last" / "state.json").is_file()  # publishing again trains nothing and keeps the run
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("not a checkpoint")
    r = _recipe("--work", str(work), "--set", str(tmp_path / "set"), "--publish-only", "--out", str(mine))
    assert r.returncode != 0 and "is not a checkpoint" in r.stderr
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # Nor is a checkpoint a recipe did not publish (a user's own fine-tune): only recipe output is replaced.
    users = tmp_path / "users-model"
    shutil.copytree(again, users)
    meta = json.loads((users / "temzoo.json").read_text())
    del meta["provenance"]["recipe"]
    (users / "temzoo.json").write_text(json.dumps(meta))
    kept = (users / "model.safetensors").read_bytes()
    r = _recipe("--work", str(work), "--set", str(tmp_path / "set"), "--publish-only", "--out", str(users))
    assert r.returncode != 0 and "is not a checkpoint a recipe published" in r.stderr
    assert (users / "model.safetensors").read_bytes() == kept


def test_publish_only_without_a_finished_run_is_one_line(tmp_path):
    write_disc_set(tmp_path / "set", n=2, size=32)
    r = _recipe("--work", str(tmp_path / "empty"), "--set", str(tmp_path / "set"), "--publish-only")
    assert r.returncode != 0 and r.stderr.strip().startswith("error: ") and "train it first" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _recipe("--work", str(tmp_path / "empty"), "--set", str(tmp_path / "set"), "--publish-only",
                "--card-md", str(tmp_path / "missing.md"))
    assert r.returncode != 0 and r.stderr.strip() == (f"error: --card-md {tmp_path / 'missing.md'} is not a file; "
                                                      "give the markdown file to append")
