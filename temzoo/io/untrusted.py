"""The one owner of reading untrusted files: refuse non-regular files, parse under a time and a memory limit.

Every upload and every CLI input is untrusted: a bit-flipped DigitalMicrograph tag can make RosettaSciIO's parser
loop for minutes, a few hundred kB of deflate-compressed TIFF pages can declare gigabytes of pixels, a FIFO given as
a file blocks ``open`` forever. So:

- :func:`require_regular` stats a path (never opens it) and refuses anything that is not a regular file.
- :func:`run_limited` runs a parser in a forked child process with ``RLIMIT_AS`` (address space) raised by at most
  :func:`memory_budget` above what the child inherited, and kills it after :func:`time_budget` seconds. The child
  sends back plain JSON plus raw NumPy buffers (never a pickle), so a compromised parser cannot hand the parent code.
  Whatever goes wrong (timeout, MemoryError, a crash) comes back as one :class:`~temzoo.errors.ReadError` line.
- :func:`check_declared_tiff` adds up the pixel counts a TIFF's page headers declare before any page is decoded.

Limits: ``TEMZOO_READ_TIMEOUT_S`` (default 30 s) and ``TEMZOO_READ_MEMORY_MB`` (default 3072 MB above the
process' own size). ``TEMZOO_SANDBOX=0`` parses in-process (debugging only). Rules: docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import resource
import stat
import struct
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from temzoo.errors import ReadError, TemzooError

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 3072
# Set in a child: parsers called again from inside it run in-process (the child already has the limits).
_IN_CHILD = False
Payload = tuple[dict[str, Any], list[np.ndarray]]


def time_budget() -> float:
    """Seconds one untrusted parse may take (``TEMZOO_READ_TIMEOUT_S``)."""
    return _env_float("TEMZOO_READ_TIMEOUT_S", DEFAULT_TIMEOUT_S)


def memory_budget() -> int:
    """Bytes of address space one untrusted parse may add (``TEMZOO_READ_MEMORY_MB``)."""
    return int(_env_float("TEMZOO_READ_MEMORY_MB", DEFAULT_MEMORY_MB) * 2**20)


def _env_float(name: str, default: float) -> float:
    try:
        v = float(os.environ.get(name, default))
    except ValueError:
        return default
    return v if math.isfinite(v) and v > 0 else default


def shown(path: str | os.PathLike | Any) -> str:
    """A path for an error line: control characters (newline, tab, ESC ...) escaped, so the line stays one line."""
    s = str(path)
    if s.isprintable():
        return s
    return repr(s)[1:-1]


def require_regular(path: str | os.PathLike, what: str = "file") -> os.stat_result:
    """``os.stat`` the path and refuse anything but a regular file (FIFO, socket, device) before any ``open``.

    A folder is left to the caller (several readers give a folder its own message); a missing path raises.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ReadError(f"no such {what}: {shown(path)}") from None
    except OSError as err:
        raise ReadError(f"cannot open {what} {shown(path)}: {err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise ReadError(f"{shown(path)} is {kind}, not a regular file; temzoo reads only regular files")
    return st


def read_small(path: str | os.PathLike, what: str, limit: int = 256 * 2**20) -> bytes:
    """The bytes of a small text file (COCO json, YOLO labels, a sidecar): a regular file of at most ``limit`` bytes.

    A FIFO would block the read forever and a multi-GB "json" would be read whole, so both are refused first.
    """
    st = require_regular(path, what)
    if stat.S_ISDIR(st.st_mode):
        raise ReadError(f"{what} {shown(path)} is a folder, not a file")
    if st.st_size > limit:
        raise ReadError(f"{what} {shown(path)} is {st.st_size / 2**20:.0f} MB, more than temzoo reads as one label "
                        f"file ({limit / 2**20:.0f} MB)")
    with open(path, "rb") as f:
        return f.read(limit + 1)[:limit]


# ------------------------------------------------------------------------------------------------ declared sizes


def check_declared_tiff(path: Path, *, lazy: bool | None, budget: int | None = None) -> None:
    """Refuse a TIFF whose page headers declare more decoded pixels than the memory budget allows.

    A stack (one series of several frames) read lazily counts one frame: only that is decoded at once.
    """
    import tifffile

    budget = memory_budget() // 3 if budget is None else budget  # raw + float32 copy + working copies
    try:
        with tifffile.TiffFile(path) as tif:
            total = 0
            n_pages = 0
            for series in tif.series:
                shape = tuple(int(n) for n in series.shape)
                itemsize = max(4, np.dtype(series.dtype).itemsize)  # decoded to float32 at least
                px = math.prod(shape)
                frames = math.prod(shape[:-2]) if len(shape) > 2 else 1
                if lazy is not False and frames > 1:
                    px //= max(1, frames)
                total += px * itemsize
                n_pages += len(series.pages)
    except ReadError:
        raise
    except Exception:  # noqa: BLE001 - unreadable headers: the reader proper reports them in its own words
        return
    if total > budget:
        raise ReadError(
            f"{shown(path.name)} declares {total / 2**30:.1f} GiB of decoded pixels ({n_pages} pages), more than "
            f"temzoo decodes at once ({budget / 2**30:.1f} GiB); the file may be a compression bomb or corrupt, "
            "or crop/bin it first"
        )


# ------------------------------------------------------------------------------------------------ the child process


def run_limited(fn: Callable[..., Payload], *args: Any, name: str = "the file",
                seconds: float | None = None, memory: int | None = None, preload: list[str] | None = None) -> Payload:
    """``fn(*args)`` in a forked child under a time and memory limit; returns its ``(json_header, arrays)``.

    ``fn`` must be a module-level function returning a JSON-able dict and a list of NumPy arrays. A
    :class:`TemzooError` raised in the child is raised again here with its class and message; anything else (timeout,
    out of memory, a crash) becomes one :class:`ReadError` line naming ``name``. ``preload``: modules a fork server
    (used when this process has threads) imports once for all its children.
    """
    if _IN_CHILD or os.environ.get("TEMZOO_SANDBOX") == "0":
        return fn(*args)
    seconds = time_budget() if seconds is None else seconds
    memory = memory_budget() if memory is None else memory
    # fork is instant and shares the already-imported readers; a process with other threads (Streamlit) must not
    # fork (a lock held by another thread would stay held in the child), so it uses a fork server instead.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["temzoo.io.untrusted", *(preload or [])])
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args, memory, seconds), daemon=True)
    with _bare_main(method == "forkserver"), _children_allowed():
        proc.start()
    send.close()
    try:
        data = _receive(recv, proc, seconds, name)
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    return _decode(data, name)


@contextlib.contextmanager
def _children_allowed() -> Iterator[None]:
    """Let a daemonic process (a dask worker) start the parse child.

    multiprocessing refuses children of daemonic processes so that none outlive their parent; this child cannot:
    it is killed after its time limit, killed again in ``run_limited``'s ``finally`` and has an RLIMIT_CPU stop.
    """
    config = multiprocessing.current_process()._config  # noqa: SLF001 - the daemon flag multiprocessing checks
    daemon = config.get("daemon")
    if daemon:
        config["daemon"] = False
    try:
        yield
    finally:
        if daemon:
            config["daemon"] = daemon


@contextlib.contextmanager
def _bare_main(active: bool) -> Iterator[None]:
    """Hide ``__main__`` while a fork-server child is prepared: multiprocessing would run the parent's main script
    again in the child, and under Streamlit that is the page script (the child died with exit code 1)."""
    main = sys.modules.get("__main__")
    if not active or main is None:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _receive(recv: Any, proc: Any, seconds: float, name: str) -> bytes:
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ReadError(f"reading {shown(name)} took longer than {seconds:g} s and was stopped; the file may be "
                            "corrupt (a damaged header can make a parser loop)")
        if recv.poll(min(left, 0.5)):
            try:
                return recv.recv_bytes()
            except (EOFError, OSError):
                break
        if not proc.is_alive() and not recv.poll(0):
            break
    proc.join(1)
    code = proc.exitcode
    raise ReadError(f"reading {shown(name)} crashed the parser ({_how(code)}); the file may be corrupt or need "
                    "more memory than temzoo allows a file")


def _how(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        import signal

        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _child(send: Any, fn: Callable[..., Payload], args: tuple, memory: int, seconds: float) -> None:
    global _IN_CHILD
    _IN_CHILD = True
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = _vm_size() + memory
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        cpu = int(seconds) + 2  # a second stop should the parent be gone
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    except (ValueError, OSError):
        pass
    try:
        header, arrays = fn(*args)
        blob = _encode({"ok": header}, arrays)
    except TemzooError as err:
        blob = _encode({"error": type(err).__name__, "message": str(err)}, [])
    except MemoryError:
        blob = _encode({"error": "ReadError", "message": "__memory__"}, [])
    except RecursionError:
        blob = _encode({"error": "ReadError", "message": "__recursion__"}, [])
    except BaseException as err:  # noqa: BLE001 - the parent words it; never a traceback
        msg = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        blob = _encode({"error": "ReadError", "message": f"__other__{msg}"}, [])
    try:
        send.send_bytes(blob)
    except BaseException:  # noqa: BLE001 - e.g. MemoryError sending a huge result: the parent reports a crash
        pass
    finally:
        send.close()
    os._exit(0)  # no atexit handlers or finalisers of the parent's objects in the child


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _encode(header: dict[str, Any], arrays: list[np.ndarray]) -> bytes:
    arrays = [np.ascontiguousarray(a) for a in arrays]
    header = {**header, "_arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}
    # internal to the two processes: NaN may cross (metadata as the file has it); NumPy scalars become Python ones
    head = json.dumps(header, default=_plain).encode("utf-8")
    return b"".join([struct.pack("<Q", len(head)), head, *(a.tobytes() for a in arrays)])


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


def _decode(blob: bytes, name: str) -> Payload:
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    if "error" in header:
        msg = header["message"]
        if msg == "__memory__":
            raise ReadError(f"reading {shown(name)} needs more memory than temzoo allows one file "
                            f"({memory_budget() / 2**30:.1f} GiB); the file may be corrupt, or crop/bin it first")
        if msg == "__recursion__":
            raise ReadError(f"{shown(name)} is nested too deeply to read; the file may be corrupt or crafted")
        if msg.startswith("__other__"):
            raise ReadError(f"{shown(name)} could not be read ({msg[9:]}); the file may be truncated or corrupt")
        import temzoo.errors as errors

        cls = getattr(errors, header["error"], ReadError)
        raise (cls if isinstance(cls, type) and issubclass(cls, TemzooError) else ReadError)(msg)
    arrays = []
    pos = 8 + n
    for dtype, shape in header["_arrays"]:
        dt = np.dtype(dtype)
        size = math.prod(shape) * dt.itemsize
        arrays.append(np.frombuffer(blob, dtype=dt, count=math.prod(shape), offset=pos).reshape(shape).copy())
        pos += size
    return header["ok"], arrays
