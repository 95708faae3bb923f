"""Prints the hostile harness's case counts per class at the end of a run (tests/hostile/_run.py counts them)."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001 - pytest hook signature
    from tests.hostile._run import COUNTS, HARNESS_BUDGET_S

    if not COUNTS:
        return
    total = sum(int(c["cases"]) for c in COUNTS.values())
    seconds = sum(c["seconds"] for c in COUNTS.values())
    terminalreporter.section("hostile inputs (issue #12)")
    for what, c in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{int(c['cases']):6d} cases  {c['seconds']:7.1f} s  {what}")
    terminalreporter.write_line(f"{total:6d} cases  {seconds:7.1f} s  in all (harness budget {HARNESS_BUDGET_S} s)")
