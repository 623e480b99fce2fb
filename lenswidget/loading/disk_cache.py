"""Atomic, lock-protected directories in lenswidget's user cache.

A cached directory is built in a temporary sibling, fsynced, stamped with a manifest and only
then renamed into place, so an interrupted build never leaves a directory that looks usable.
A directory whose manifest is missing or whose files do not match it is rebuilt.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, TypeVar

MANIFEST = "lenswidget-manifest.json"
_TMP_TAG = ".tmp-"
T = TypeVar("T")


def cache_root() -> Path:
    """``$LENSWIDGET_CACHE_DIR``, else ``$XDG_CACHE_HOME/lenswidget``, else ``~/.cache/lenswidget``."""
    if os.environ.get("LENSWIDGET_CACHE_DIR"):
        return Path(os.environ["LENSWIDGET_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lenswidget"


def is_complete(path: Path) -> bool:
    """True if ``path`` has a manifest and every file it lists exists with the listed size."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        return all((path / name).stat().st_size == size for name, size in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. directories on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_manifest(path: Path) -> None:
    files = {p.relative_to(path).as_posix(): p.stat().st_size
             for p in sorted(path.rglob("*")) if p.is_file()}
    for name in files:
        _fsync(path / name)
    (path / MANIFEST).write_text(json.dumps({"files": files, "created": time.time()}, indent=1))
    _fsync(path / MANIFEST)
    _fsync(path)


def _retry_until(acquire: Callable[[], T], busy: type[BaseException], deadline: float, lock_path: Path) -> T:
    """Call ``acquire`` every 0.2 s while it raises ``busy``; TimeoutError once past ``deadline``."""
    while True:
        try:
            return acquire()
        except busy:
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for lock {lock_path}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def file_lock(lock_path: Path, timeout: float = 1800.0) -> Iterator[None]:
    """Exclusive inter-process lock on ``lock_path`` (``flock``; an exclusive-create file elsewhere)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        fcntl = None
    if fcntl is not None:
        with open(lock_path, "a+") as fh:
            _retry_until(lambda: fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB), BlockingIOError, deadline, lock_path)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    fd = _retry_until(  # pragma: no cover - non-POSIX
        lambda: os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY), FileExistsError, deadline, lock_path
    )
    try:
        yield
    finally:
        os.close(fd)
        os.unlink(lock_path)


def cached_dir(name: str, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """``root/name``, built by ``build(tmp_dir)`` unless a complete copy already exists.

    Two processes asking at once build it once (the second waits on a lock and reuses the
    result). Leftover temporary directories of interrupted builds are removed, never used.
    """
    root = Path(root) if root is not None else cache_root()
    final = root / name
    if is_complete(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{name}.lock"):
        if is_complete(final):  # built by another process while we waited
            return final
        for stale in root.glob(f".{name}{_TMP_TAG}*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}{_TMP_TAG}", dir=root))
        try:
            build(tmp)
            _write_manifest(tmp)
            if final.exists():  # incomplete or corrupted: move aside, then delete
                broken = root / f".{name}{_TMP_TAG}broken-{os.getpid()}"
                os.replace(final, broken)
                shutil.rmtree(broken, ignore_errors=True)
            os.replace(tmp, final)
            _fsync(root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
