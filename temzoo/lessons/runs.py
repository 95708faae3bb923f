"""Short fine-tuning runs for lessons 3 and 4: one :func:`temzoo.train.train` call per curve, tiny data, a time budget.

Every run of a lesson validates on the same images (the lesson set's validation fields), so the curves compare.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from temzoo.errors import DataError

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class RunSpec:
    """One curve: ``base`` "scratch" or a checkpoint folder; ``strategy`` a temzoo.train strategy."""

    label: str
    base: str
    strategy: str
    n_labels: int
    seconds: float
    seed: int = 0
    lr: float = 1e-3
    epochs: int | None = None  # instead of the time budget (4 steps each): reproducible, for tests and notebooks


@dataclass
class Curve:
    """The validation curve of one run, and what it trained."""

    label: str
    strategy: str
    base: str
    n_labels: int
    budget_s: float
    seconds: list[float] = field(default_factory=list)  # wall-clock at each validation
    steps: list[int] = field(default_factory=list)
    val_f1: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    trainable: int = 0
    total: int = 0
    train_images: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def best_f1(self) -> float:
        return max(self.val_f1) if self.val_f1 else 0.0

    @property
    def final_f1(self) -> float:
        return self.val_f1[-1] if self.val_f1 else 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def run_curve(spec: RunSpec, lesson_set, workdir, progress: Progress | None = None,
              should_stop: Callable[[], bool] | None = None) -> Curve:
    """Train one run for ``spec.seconds`` on the first ``spec.n_labels`` training images of ``lesson_set``."""
    from pathlib import Path

    from temzoo.train import TrainConfig, train
    from temzoo.train.loop import METRICS_FILE

    if not 1 <= spec.n_labels <= len(lesson_set.train_names):
        raise DataError(f"{spec.n_labels} labelled images asked for; the lesson set has "
                        f"{len(lesson_set.train_names)} (choose 1 to {len(lesson_set.train_names)})")
    key = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:8]
    work = Path(workdir) / f"{spec.label.replace(' ', '_')}-{key}"
    shutil.rmtree(work, ignore_errors=True)
    names = lesson_set.train_names[:spec.n_labels]
    data = lesson_set.subset(names + lesson_set.val_names, work / "data")
    cfg = TrainConfig(images=str(data / "images"), masks=str(data / "masks"), base=spec.base,
                      strategy=spec.strategy, minutes=None if spec.epochs else spec.seconds / 60, epochs=spec.epochs,
                      tile_size=lesson_set.config.size_px,
                      batch_size=4, val_names=list(lesson_set.val_names), patience=0, seed=spec.seed, lr=spec.lr,
                      steps_per_epoch=4, warmup_fraction=0.0, device="cpu")
    t0 = time.monotonic()
    on_step = None
    if progress is not None:
        def on_step(info: dict) -> None:
            frac = info["progress"] if spec.epochs else (time.monotonic() - t0) / spec.seconds
            progress(min(1.0, frac), f"{spec.label}: loss {info['loss']:.3f}")
    result = train(cfg, work / "train", out=work / "result", on_step=on_step, should_stop=should_stop,
                   log=lambda _m: None)
    curve = Curve(spec.label, spec.strategy, spec.base, spec.n_labels, spec.seconds, wall_s=time.monotonic() - t0,
                  train_images=names)
    for line in (result / METRICS_FILE).read_text().splitlines():
        r = json.loads(line)
        curve.seconds.append(float(r["seconds"]))
        curve.steps.append(int(r["step"]))
        curve.val_f1.append(float(r.get("val_f1") or 0.0))
        curve.val_loss.append(float(r.get("val_loss") or 0.0))
        curve.train_loss.append(float(r["train_loss"]))
        curve.trainable = int(r.get("trainable", 0))
    meta = json.loads((result / "temzoo.json").read_text())
    curve.total = int(meta.get("provenance", {}).get("total_parameters") or 0)
    shutil.rmtree(work, ignore_errors=True)  # curves are all the lesson keeps
    return curve


def run_all(specs: list[RunSpec], lesson_set, workdir, progress: Progress | None = None,
            should_stop: Callable[[], bool] | None = None) -> list[Curve]:
    """Run ``specs`` one after the other (a 2-core laptop trains one at a time best); progress over all of them."""
    out = []
    for i, spec in enumerate(specs):
        sub = None
        if progress is not None:
            def sub(f: float, text: str = "", i: int = i) -> None:
                progress((i + f) / len(specs), f"run {i + 1}/{len(specs)} -- {text}")
        out.append(run_curve(spec, lesson_set, workdir, sub, should_stop))
    return out
