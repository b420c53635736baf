"""File-system helpers: outputs are replaced only by complete new files."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Iterator

from depthda.errors import DepthdaError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Hold Ctrl-C (SIGINT) and SIGTERM back for a few statements that must run together, such as
    creating a temporary file and remembering its name for cleanup; delivered when the block ends.
    The block gets the list of signals held so far (empty outside the main thread, where Python
    cannot set handlers and nothing is held).

    Done with Python-level handlers that only record the signal, not a thread signal mask: the
    kernel hands a process signal to any thread that does not block it (torch, gloo and OpenMP
    start threads), and Python then runs its handler in the main thread, mask or not."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in held}
    try:
        yield pending
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


# Temporaries are named `.<target name>.depthda-<pid>-<random><suffix>`: hidden, beside their
# target (a rename never crosses file systems), and traceable to the process that made them, so
# a later process writing into the same folder removes those whose process is dead (killed runs,
# power loss). Each process sweeps a folder once: stale temporaries only come from processes that
# ended, and rescanning a folder for every file written into it (a synth dataset, an image
# folder's output) would cost time growing with the square of the file count.
_TMP_TAG = "depthda-"
_STALE = re.compile(r"\..+?\." + re.escape(_TMP_TAG) + r"(\d+)-")
_SWEPT: set[Path] = set()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporaries beside `path` (in its folder, of any target) left by processes that
    no longer exist; returns what went."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            match = _STALE.match(entry.name)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid == os.getpid() or _pid_alive(pid):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry)
    return removed


def _sweep_once(path: Path) -> None:
    folder = path.parent.resolve()
    if folder not in _SWEPT:
        remove_stale_temporaries(path)
        _SWEPT.add(folder)


_NAME_BYTES = 120  # of the target's name kept in a temporary's: a legal 255-byte name keeps a legal temporary


def _tmp_prefix(path: Path) -> str:
    name = path.name.encode("utf-8", "surrogateescape")[:_NAME_BYTES].decode("utf-8", "ignore")
    return f".{name}.{_TMP_TAG}{os.getpid()}-"


def _short_suffix(suffix: str) -> str:
    return suffix if len(suffix.encode("utf-8", "surrogateescape")) <= 16 else ""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, busy: str) -> Iterator[None]:
    """Hold an advisory lock on file `path` (created if missing) for the block; if another
    process holds it, refuse with DepthdaError(`busy`). The kernel drops it when the process ends."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DepthdaError(busy) from None
        yield
    finally:
        os.close(fd)


def _named_for_user(exc: BaseException, tmp: Path, path: Path) -> BaseException | None:
    """`exc` naming `path` (or the file under it) where it names the hidden temporary `tmp`, so an
    error ("no space left on device") names what the user asked for; None if it names neither."""
    def swap(text: str) -> str:
        return str(path) + text[len(str(tmp)):] if text.startswith(str(tmp)) else text.replace(str(tmp), str(path))

    if isinstance(exc, OSError) and exc.filename is not None and str(tmp) in str(exc.filename):
        return OSError(exc.errno, exc.strerror, swap(str(exc.filename)))
    if isinstance(exc, DepthdaError) and str(tmp) in str(exc):
        return type(exc)(swap(str(exc)))
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file keeps the target's suffix (or `suffix`) so writers that pick a format
    from the extension (cv2.imwrite, np.save, VideoWriter) behave as for the final name. It is
    removed on every way out of the block (exceptions and Ctrl-C included).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path)
    tmp = None
    try:
        with signals_deferred():  # no Ctrl-C between creating the file and knowing its name
            fd, name = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=suffix if suffix is not None else _short_suffix(path.suffix),
                                        dir=path.parent)
            tmp = Path(name)
            os.close(fd)
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            named = _named_for_user(exc, tmp, path)
            if named is not None:
                raise named from None
        raise


def _swap_in_dir(tmp: Path, path: Path) -> None:
    """Put folder `tmp` at `path` whole, moving any folder there aside first.

    Concurrent writers of the same folder each keep retrying until their rename lands: the last
    to finish wins, and nobody ever sees a folder that is half one run's and half another's.
    """
    with contextlib.suppress(FileNotFoundError):  # one stat: another writer may move `path` aside meanwhile
        if not stat.S_ISDIR(os.stat(path).st_mode):
            raise DepthdaError(f"{path} exists and is not a folder; the output folder cannot replace it")
    moved_aside = []
    try:
        while True:
            try:
                os.replace(tmp, path)  # succeeds when nothing (or an empty folder) is at `path`
                return
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
            aside = path.with_name(f"{_tmp_prefix(path)}{uuid.uuid4().hex}.old")
            try:
                os.replace(path, aside)
            except FileNotFoundError:  # another writer moved it aside first: try again
                continue
            moved_aside.append(aside)
    finally:
        for aside in moved_aside:
            shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it replaces `path` whole, and only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(path)
    tmp = None
    try:
        with signals_deferred():
            tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), dir=path.parent))
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700 folders
        with signals_deferred():  # the old folder is either still in place or entirely replaced
            _swap_in_dir(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            named = _named_for_user(exc, tmp, path)
            if named is not None:
                raise named from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Path(path).write_bytes(data), with the file named in its error: a failed write() (a full
    disk) raises an OSError that names no file."""
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        write_bytes(tmp, data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))
