"""Teaching mode: guided lessons that run offline on a laptop CPU in minutes (the library side; no Streamlit).

Each lesson module has ``TITLE``, ``INTRO`` (markdown), ``QUESTION``, one or more functions that run the experiment
and return plain numbers and arrays, ``findings(result)`` (sentences read off those numbers) and ``answer(result)``.
:mod:`temzoo.figures` draws the plots (plotly); :mod:`temzoo.lessons.workspace` holds the data and models.
See docs/LESSONS.md (also: how to add a lesson).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LessonInfo:
    id: str
    module: str  # temzoo.lessons.<module>
    title: str
    minutes: float  # typical time on a 2-core CPU, first use included, with the zoo model (docs/LESSON_TIMINGS.md)


LESSONS: tuple[LessonInfo, ...] = (
    LessonInfo("dose-defocus", "dose_defocus", "1. What does a micrograph look like to the network?", 1.0),
    LessonInfo("fringes", "fringes", "2. Lattice fringes or contrast?", 1.0),
    LessonInfo("labels", "label_count", "3. How many labels do you need?", 2.0),
    LessonInfo("layers", "layers", "4. Which layers to train?", 1.5),
    LessonInfo("trust", "trust", "5. Can you trust the confidence?", 1.0),
)


def lesson_module(lesson_id: str):
    """The module of a lesson by id (imported on demand: the page loads only the lesson shown)."""
    import importlib

    from temzoo.errors import DataError

    info = next((x for x in LESSONS if x.id == lesson_id), None)
    if info is None:
        raise DataError(f"unknown lesson {lesson_id!r}; choose one of {', '.join(x.id for x in LESSONS)}")
    return importlib.import_module(f"temzoo.lessons.{info.module}")


__all__ = ["LESSONS", "LessonInfo", "lesson_module"]
