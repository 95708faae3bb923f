"""Reading microscope files (and, in sibling modules, masks and writers).

``read(path)`` -> every real-space image as a :class:`~temzoo.types.Micrograph`; ``read_micrograph(path, index)`` ->
one; ``read_bytes(data, filename)`` for uploads; ``scan`` also reports what was skipped and why.
"""

from temzoo.io.readers import (
    SUPPORTED_EXTENSIONS,
    ReadResult,
    Skipped,
    describe,
    pick,
    read,
    read_bytes,
    read_micrograph,
    safe_filename,
    scan,
    scan_bytes,
)

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ReadResult",
    "Skipped",
    "describe",
    "pick",
    "read",
    "read_bytes",
    "read_micrograph",
    "safe_filename",
    "scan",
    "scan_bytes",
]
