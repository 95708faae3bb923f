"""Where the lessons keep their files, the small simulated sets they train on, and the model they look at.

Everything lives under ``temzoo.paths.home()/lessons`` (or a folder you pass, e.g. a test's tmp dir), so a lesson
runs offline after its first use: exit waves, the labelled set and the stand-in model are computed once and reused.

The model: the zoo's default base (``hrtem-nanoparticle``) when it is installed (bundled, local zoo or HF cache);
otherwise a *stand-in* trained here for under a minute on a separate simulated set, and labelled as such everywhere.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from temzoo.errors import DataError, ModelError

Progress = Callable[[float, str], None]

PIXEL_SIZE_NM = 0.05  # the zoo base's pixel size: HRTEM with resolved lattice fringes
STANDIN_NAME = "standin-base"


@dataclass(frozen=True)
class DataConfig:
    """A small simulated labelled set: ``n_train`` fields to take labels from, ``n_val`` fields to score on.

    Each field gets ``variants`` images (own dose and defocus). Training images are variant 0 of the first fields,
    validation images every variant of the last fields: the split is by field (structure), never by image.
    """

    n_train: int = 4
    n_val: int = 2
    variants: int = 2
    size_px: int = 128
    seed: int = 11
    materials: tuple[str, ...] = ("Au", "Pt", "CdSe")
    dose_range: tuple[float, float] = (50.0, 1000.0)
    defocus_range: tuple[float, float] = (-15.0, 15.0)
    diameter_nm: tuple[float, float] = (2.0, 4.0)

    @property
    def n_fields(self) -> int:
        return self.n_train + self.n_val

    def key(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


# The stand-in base learns from other structures (another seed) than the lesson set: a "pretrained" model.
BASE_DATA = DataConfig(n_train=4, n_val=1, variants=2, seed=101)


@dataclass
class LessonSet:
    """A simulated labelled set on disk plus which image names are for training (in order) and validation."""

    folder: Path
    train_names: list[str]
    val_names: list[str]
    pixel_size_nm: float
    config: DataConfig

    @property
    def images(self) -> Path:
        return self.folder / "images"

    @property
    def masks(self) -> Path:
        return self.folder / "masks"

    @property
    def train_field_names(self) -> list[str]:
        """Every image (all variants) of the training fields: more pixels for fitting a temperature."""
        v = self.config.variants
        first = [int(n) for n in self.train_names]
        width = len(self.train_names[0])
        return [f"{k + i:0{width}d}" for k in first for i in range(v)]

    def image_path(self, name: str) -> Path:
        return next(self.images.glob(f"{name}.*"))

    def mask_path(self, name: str) -> Path:
        return self.masks / f"{name}.png"

    def load(self, name: str):
        """``(counts float32, mask bool)`` of one image."""
        import numpy as np
        from PIL import Image

        from temzoo.io import read_micrograph

        img = read_micrograph(self.image_path(name)).data.astype(np.float32)
        mask = np.asarray(Image.open(self.mask_path(name))) > 0
        return img, mask

    def subset(self, names: list[str], dest: Path) -> Path:
        """Copy ``names`` (image + mask) into ``dest/images`` and ``dest/masks`` (a fresh folder)."""
        if dest.exists():
            shutil.rmtree(dest)
        for sub in ("images", "masks"):
            (dest / sub).mkdir(parents=True)
        for n in names:
            src = self.image_path(n)
            shutil.copy2(src, dest / "images" / src.name)
            shutil.copy2(self.mask_path(n), dest / "masks" / f"{n}.png")
        return dest


@dataclass
class LessonModel:
    """The model a lesson looks at: where it is, what to call it, and whether it is the real zoo base."""

    ref: str  # folder path (what temzoo.zoo.load_model takes)
    label: str  # shown to the student
    kind: str  # "zoo" | "stand-in"
    pixel_size_nm: float | None = None


class Workspace:
    """The lessons' folder. ``Workspace()`` uses ``home()/lessons``; pass a folder to keep things elsewhere."""

    def __init__(self, root: str | Path | None = None) -> None:
        from temzoo.paths import home

        self.root = Path(root) if root is not None else home() / "lessons"

    @property
    def exitwaves(self) -> Path:
        return self.root / "exitwaves"

    @property
    def standin(self) -> Path:
        return self.root / STANDIN_NAME

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def set_folder(self, config: DataConfig) -> Path:
        return self.root / "data" / f"set-{config.key()}"

    # ------------------------------------------------------------------------------------------------ data
    def has_set(self, config: DataConfig = DataConfig()) -> bool:
        return (self.set_folder(config) / "simulation.json").is_file()

    def lesson_set(self, config: DataConfig = DataConfig(), progress: Progress | None = None) -> LessonSet:
        """The simulated labelled set for ``config`` (simulated on first use: ~2-7 s per field on a laptop CPU)."""
        from temzoo.simulate import SimulationConfig, generate

        folder = self.set_folder(config)
        n = config.n_fields * config.variants
        width = max(5, len(str(n - 1)))
        names = [f"{k:0{width}d}" for k in range(n)]
        if not (folder / "simulation.json").is_file():
            sim = SimulationConfig(
                n=n, size_px=config.size_px, pixel_size_nm=PIXEL_SIZE_NM, seed=config.seed,
                variants_per_field=config.variants, materials=config.materials, diameter_nm=config.diameter_nm,
                n_particles=(1, 2), carbon_nm=(2.0, 4.0), dose_range=config.dose_range,
                defocus_range=config.defocus_range, cache_dir=str(self.exitwaves))
            tmp = folder.with_name(folder.name + f".tmp{time.monotonic_ns()}")
            cb = (lambda k, total: progress(k / total, f"simulated image {k}/{total}")) if progress else None
            generate(sim, tmp, progress=cb)
            if folder.exists():  # another session finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.rename(folder)
        v = config.variants
        train = [names[f * v] for f in range(config.n_train)]
        val = [names[f * v + i] for f in range(config.n_train, config.n_fields) for i in range(v)]
        return LessonSet(folder, train, val, PIXEL_SIZE_NM, config)

    # ----------------------------------------------------------------------------------------------- model
    def find_model(self) -> LessonModel | None:
        """The zoo's default base if installed, else the stand-in if already trained, else None (no network)."""
        return zoo_base() or self.standin_model()

    def standin_model(self) -> LessonModel | None:
        """The stand-in, if it has been trained in this workspace."""
        if (self.standin / "model.safetensors").is_file():
            return LessonModel(str(self.standin), "stand-in model (trained here for under a minute on simulated "
                               "particles, because the zoo model is not installed)", "stand-in", PIXEL_SIZE_NM)
        return None

    def build_standin(self, seconds: float = 45.0, progress: Progress | None = None,
                      data: DataConfig = BASE_DATA, epochs: int | None = None) -> LessonModel:
        """Train the stand-in base from scratch for ``seconds`` (or ``epochs`` of 8 steps) on its own simulated set
        (kept for later lessons)."""
        from temzoo.train import TrainConfig, train

        if not seconds > 0:
            raise DataError(f"the stand-in needs a positive training time, got {seconds} s")

        def sub(lo: float, hi: float) -> Progress | None:
            return None if progress is None else (lambda f, text="": progress(lo + (hi - lo) * f, text))

        ls = self.lesson_set(data, progress=sub(0.0, 0.3))
        cfg = TrainConfig(images=str(ls.images), masks=str(ls.masks), base="scratch", strategy="scratch",
                          minutes=None if epochs else seconds / 60, epochs=epochs, steps_per_epoch=8,
                          tile_size=data.size_px, batch_size=4, val_names=ls.val_names,
                          patience=0, seed=0, description="temzoo lessons: stand-in base (quick training on "
                          "simulated HRTEM particles; not the zoo model)")
        work = self.root / f"standin-work-{time.monotonic_ns()}"  # private: two sessions may build at once
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.monotonic()
        step = sub(0.3, 1.0)
        on_step = None if step is None else (lambda info: step(
            min(1.0, info["progress"] if epochs else (time.monotonic() - t0) / seconds),
            f"training the stand-in: loss {info['loss']:.3f}"))
        train(cfg, work, out=self.standin, on_step=on_step, log=lambda _m: None)
        shutil.rmtree(work, ignore_errors=True)
        model = self.standin_model()
        if model is None:  # pragma: no cover - train() raises rather than writing nothing
            raise ModelError("the stand-in model was not written; try again")
        return model

    def model(self, build: bool = True, seconds: float = 45.0, progress: Progress | None = None) -> LessonModel:
        """The lesson model; trains the stand-in when nothing is there and ``build`` is set."""
        found = self.find_model()
        if found is not None:
            return found
        if not build:
            raise ModelError("no lesson model yet: install the zoo model hrtem-nanoparticle or build the stand-in")
        return self.build_standin(seconds, progress)


def zoo_base() -> LessonModel | None:
    """The zoo's default base when it is on disk (bundled, local zoo or HF cache) and segments; never downloads."""
    try:
        from temzoo.zoo.sources import list_models

        models = list_models(hub=False)
    except Exception:  # noqa: BLE001 - a broken registry must not stop a lesson; the stand-in takes over
        return None
    for m in models:
        if m.default_base and m.path is not None and m.task == "segmentation":
            return LessonModel(str(m.path), f"zoo model {m.id}", "zoo", m.pixel_size_nm)
    return None


_CACHE: dict[tuple[str, float], object] = {}


def load(model: LessonModel):
    """Load (and cache per folder and modification time) the checkpoint of a lesson model."""
    from temzoo.zoo import load_model

    p = Path(model.ref)
    w = p / "model.safetensors"
    key = (str(p.resolve()), w.stat().st_mtime if w.exists() else 0.0)
    if key not in _CACHE:
        _CACHE[key] = load_model(model.ref)
    return _CACHE[key]
