"""#14.2 domain shift on the bundled models and #14.3 metrics that fit the class (objects vs networks)."""

from __future__ import annotations

import numpy as np
import pytest

from temzoo import metrics as tzm
from temzoo.io import read_micrograph
from temzoo.paths import bundled_zoo_dir
from temzoo.zoo import load_model

STO = "other-formats/ncempy/16_STOimage_1.ser"


@pytest.fixture(scope="module")
def hrtem():
    return load_model(str(bundled_zoo_dir() / "hrtem-nanoparticle"))


@pytest.fixture(scope="module")
def uo2():
    return load_model(str(bundled_zoo_dir() / "uo2-grain-boundaries"))


def test_srtio3_crystal_warns_for_the_nanoparticle_model(hrtem, shared_data):
    d = tzm.domain_shift(hrtem, read_micrograph(shared_data / STO))
    assert d.score > d.threshold
    assert any("unlike the model's training images" in w for w in d.warnings)


def test_nanoparticle_model_is_quiet_on_an_unseen_simulated_field(hrtem, tmp_path):
    from temzoo.simulate import SimulationConfig, generate
    from temzoo.simulate.dataset import TEST_SEED

    generate(SimulationConfig(n=1, variants_per_field=1, seed=TEST_SEED, dose_values=(300.0,),
                              defocus_values=(-10.0,)), tmp_path / "sim")
    mg = read_micrograph(next((tmp_path / "sim" / "images").iterdir()))
    d = tzm.domain_shift(hrtem, mg)
    assert d.score is not None and d.score < d.threshold
    assert not any("unlike" in w for w in d.warnings)


def test_uo2_model_quiet_on_its_test_image_warns_on_the_crystal(uo2, shared_data):
    prov = uo2.meta.provenance
    folder = shared_data / "labeled/uo2-grain-boundaries/images"
    test = [p for p in sorted(folder.iterdir()) if p.stem not in prov["train_images"] + prov["val_images"]]
    assert test
    d = tzm.domain_shift(uo2, read_micrograph(test[0]))
    assert d.score < d.threshold
    assert tzm.domain_shift(uo2, read_micrograph(shared_data / STO)).score > d.threshold


def test_every_bundled_model_records_kind_and_reference():
    for name, kind in (("hrtem-nanoparticle", ["objects"]), ("uo2-grain-boundaries", ["network"]),
                       ("steel-dislocation-loops", ["objects"])):
        ck = load_model(str(bundled_zoo_dir() / name))
        assert ck.meta.class_kinds == kind and ck.meta.provenance["ood"]["threshold"] > 0
        assert f"Class kind: {kind[0]}" in (bundled_zoo_dir() / name / "README.md").read_text()


def _grid(n: int = 4, size: int = 120, width: int = 2) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    for i in range(1, n):
        c = i * size // n
        m[:, c:c + width] = 1
        m[c:c + width, :] = 1
    return m


def test_network_metrics_count_grains_not_objects():
    m = _grid()  # 4 x 4 grains, the 4 central ones not cut by the edge
    from temzoo.types import Prediction

    pred = Prediction(m, m.astype(np.float32), np.ones_like(m, np.float32), 0.5, 0.5)
    s = tzm.unsupervised_metrics(pred, kind="network")
    assert s["n_grains"] == 16 and s["n_grains_interior"] == 4 and "n_objects" not in s
    assert s["median_diameter"] == pytest.approx(np.sqrt(4 * 28 * 28 / np.pi) * 0.5, rel=0.01)
    sup = tzm.supervised_metrics(m.astype(np.float32), _grid(n=3), 0.5, kind="network")
    assert "object_f1" not in sup and "count_error" not in sup
    assert sup["n_pred_grains"] == 16 and sup["n_true_grains"] == 9 and sup["size_distance"] > 0
    assert tzm.guess_kind([m]) == "network"


def test_objects_flag_edge_particles_and_feret():
    m = np.zeros((100, 100), np.uint8)
    m[40:60, 40:50] = 1  # a 20 x 10 rectangle inside
    m[0:10, 0:10] = 1  # cut by the edge
    t = tzm.particle_table(m, None, 0.39)
    inner = t[~t["touches_edge"]].iloc[0]
    assert t["touches_edge"].sum() == 1
    assert inner["feret_max_nm"] == pytest.approx(np.hypot(19, 9) * 0.39, rel=0.1)
    assert inner["feret_min_nm"] == pytest.approx(10 * 0.39, rel=0.15)
    from temzoo.types import Prediction

    s = tzm.unsupervised_metrics(Prediction(m, m.astype(np.float32), np.ones((100, 100), np.float32), 0.39, 0.39))
    assert s["n_objects"] == 2 and s["n_edge_objects"] == 1
    assert s["median_diameter"] == pytest.approx(np.sqrt(4 * 200 / np.pi) * 0.39, rel=0.01)  # edge one left out
    assert tzm.guess_kind([m]) == "objects"


def test_uo2_evaluate_gives_grains_no_object_f1(uo2, shared_data, tmp_path):
    import shutil

    src = shared_data / "labeled/uo2-grain-boundaries"
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    img = sorted((src / "images").iterdir())[0]
    shutil.copy(img, tmp_path / "images" / img.name)
    shutil.copy(src / "masks" / f"{img.stem}.png", tmp_path / "masks" / f"{img.stem}.png")
    res = tzm.evaluate_folders(uo2, tmp_path / "images", tmp_path / "masks")
    assert res["kind"] == "network" and "object_f1" not in res and "count_error" not in res
    assert res["n_true_grains"] > 0 and res["n_pred_grains"] >= 0
