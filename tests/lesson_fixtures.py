"""A small lessons workspace built once per test process (simulated sets + a stand-in model trained for 3 epochs).

Shared by tests/test_lessons.py and tests/test_page_teach.py: ``<root>/lessons`` is the workspace, so setting
TEMZOO_HOME to ``<root>`` makes the Teach page find it.
"""

from __future__ import annotations

from pathlib import Path

from temzoo.lessons.workspace import DataConfig, LessonModel, Workspace

# CI-sized: 96 px tiles, 2 + 1 fields for the lesson set, 2 + 1 for the stand-in's own set
TEST_DATA = DataConfig(n_train=2, n_val=1, variants=2, size_px=96, seed=11)
TEST_BASE_DATA = DataConfig(n_train=2, n_val=1, variants=1, size_px=96, seed=101)
_BUILT: dict[str, tuple[Workspace, LessonModel]] = {}


def build(root: Path) -> tuple[Workspace, LessonModel]:
    """Build (once per process) the workspace under ``root/lessons``; returns it and its stand-in model."""
    if "ws" not in _BUILT:
        ws = Workspace(Path(root) / "lessons")
        ws.lesson_set(TEST_DATA)
        model = ws.build_standin(data=TEST_BASE_DATA, epochs=5)
        _BUILT["ws"] = (ws, model)
    return _BUILT["ws"]
