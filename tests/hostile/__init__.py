"""The hostile-input harness of issue #12 (see _run.py for the API, docs/RELIABILITY.md for the counts)."""
