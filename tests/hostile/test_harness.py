"""The harness itself can fail: a traceback, a hang, a two-line error, a lost file and a memory bomb are caught."""

from __future__ import annotations

import time

import pytest

from tests.hostile._run import Case, assert_clean, assert_kept, failures, run_batch, run_python, snapshot


def selftest_item(item: dict) -> None:
    """Batch function for the self-test: behaves as the item says."""
    from temzoo.errors import ReadError

    kind = item["kind"]
    if kind == "raise":
        raise ValueError("boom")
    if kind == "refuse":
        raise ReadError("one clean line")
    if kind == "two-lines":  # TemzooError joins lines itself; a batch function's own refusal may not
        from tests.hostile._run import CleanRefusal

        raise CleanRefusal("first line\nsecond line")
    if kind == "hang":
        while True:
            time.sleep(0.01)
    if kind == "die":
        import os

        os._exit(9)


def test_batch_classifies_every_outcome():
    cases = [Case(k, {"kind": k}, 0) for k in ("ok", "raise", "refuse", "two-lines", "hang", "die", "after")]
    outcomes, _ = run_batch("tests.hostile.test_harness:selftest_item", cases, item_timeout=1)
    got = {o.id: o.status for o in outcomes}
    assert got == {"ok": "ok", "raise": "traceback", "refuse": "error", "two-lines": "bad-error", "hang": "hang",
                   "die": "crash", "after": "ok"}, got  # a fresh worker goes on after a crash
    assert len(failures(outcomes)) == 4  # raise, two-lines, hang, die


def test_cold_process_contract_and_memory_bound():
    with pytest.raises(AssertionError, match="Traceback|neither"):
        assert_clean(run_python("raise ValueError('x')"))
    p = run_python("b = bytearray(6 * 2**30)", memory_mb=4096)  # over RLIMIT_AS: MemoryError, not the machine
    assert p.rc != 0 and "MemoryError" in p.stderr
    p = run_python("import time; time.sleep(30)", timeout=1)
    assert p.timed_out and p.seconds < 10


def test_snapshot_sees_loss_and_overwrite(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    before = snapshot(tmp_path)
    (tmp_path / "new.txt").write_text("new")  # allowed
    assert_kept(before, tmp_path)
    (tmp_path / "a.txt").write_text("A")
    with pytest.raises(AssertionError, match="overwritten"):
        assert_kept(before, tmp_path)
    (tmp_path / "b.txt").unlink()
    with pytest.raises(AssertionError, match="lost"):
        assert_kept(before, tmp_path)
