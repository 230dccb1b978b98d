"""One writer per journal path, and where a new journal is written.

The lock is an exclusive ``flock`` on ``<journal>.lock``, a file beside the
journal, so it outlives the journal file being replaced (``--force``
renames a new file into place). It is taken before the journal is created
and released after it is sealed; the OS releases it if the writer dies. A
forked writer process inherits it, so the path stays locked until both
processes are gone. Readers never take it: :func:`being_written` only looks.

Lock files are removed on release under the lock; the acquirer re-checks
that the file it locked is still the one at the path, so a lock file
unlinked meanwhile cannot give two writers "the" lock.

Replacing a journal (:class:`Placement`): the new run is written to
``<journal>.partial`` and renamed over the old journal only once it is
sealed ``finished``; a run that fails leaves the old journal as it was and
its own journal at ``<stem>.failed<suffix>``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None  # type: ignore[assignment]

from tidemark.journal.errors import JournalLockedError

CONTENDED_WAIT: Final = 0.3
"""Seconds an acquirer retries a busy lock: a reader's look (see
:func:`being_written`) holds it for microseconds; a writer holds it for the
whole run, so a second writer fails within this."""

RETRY_SLEEP: Final = 0.01
SIDE_FILES: Final = ("-wal", "-shm", "-journal")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class WriterLock:
    """The exclusive writer lock of one journal path."""

    def __init__(self, path: str | os.PathLike[str], *, wait: float = CONTENDED_WAIT) -> None:
        self.path = Path(path)
        self._file = lock_path(self.path)
        self._fd = -1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tries = max(1, round(wait / RETRY_SLEEP))  # counted, not timed: no clock in the journal
        while True:
            fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                tries -= 1
                if tries <= 0:
                    raise JournalLockedError(f"{self.path}: journal is being written by another process") from None
                time.sleep(RETRY_SLEEP)
                continue
            if _same_file(fd, self._file):
                break
            os.close(fd)  # unlinked by its last holder meanwhile: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        """Remove the lock file and unlock (idempotent)."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        with contextlib.suppress(FileNotFoundError):
            if _same_file(fd, self._file):
                self._file.unlink()
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def being_written(path: str | os.PathLike[str]) -> bool:
    """Whether a writer holds ``path``'s lock right now (a look: a shared
    lock taken and dropped at once; a writer starting meanwhile retries)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(lock_path(Path(path)), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def staging_path(path: Path) -> Path:
    """Where a new journal is made until its first records (the run's
    header) are committed; then :func:`put_in_place` moves it to ``path``.
    So ``path`` holds a journal with its header, or nothing: a run killed
    while creating its journal, or before its header, leaves only this file,
    which the next writer of ``path`` clears (it holds the lock)."""
    return path.with_name(path.name + ".creating")


def put_in_place(path: Path) -> None:
    """Move the journal made at :func:`staging_path` to ``path``. Its
    connections must be closed (SQLite then folds its ``-wal`` into it)."""
    staging = staging_path(path)
    os.replace(staging, path)
    sync_directory(path.parent)
    for suffix in SIDE_FILES:
        Path(f"{staging}{suffix}").unlink(missing_ok=True)


def sync_directory(folder: Path) -> None:
    """Make a rename into ``folder`` durable: SQLite syncs a journal's
    contents, not the directory entry a rename changes, so after a power
    loss the journal could be back under its staging name. A no-op where
    directories cannot be opened (Windows) or synced (some network file
    systems refuse with EINVAL)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def remove_journal_files(path: Path) -> None:
    """The journal file and its SQLite side files (only under the lock)."""
    for suffix in ("", *SIDE_FILES):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass
class Placement:
    """Where a new journal goes: ``path`` in the end, ``write_path`` while
    the run writes it (``path`` itself, or ``<path>.partial`` when it
    replaces a journal), under ``lock``."""

    path: Path
    write_path: Path
    lock: WriterLock

    @property
    def replacing(self) -> bool:
        return self.write_path != self.path

    def finish(self, ok: bool) -> Path:
        """Put the sealed journal where it belongs and release the lock:
        over ``path`` if the run finished, beside it (``<stem>.failed``)
        if it did not and would have replaced a journal. Returns where it is."""
        try:
            if not self.replacing:
                return self.path
            target = self.path if ok else self.path.with_name(f"{self.path.stem}.failed{self.path.suffix}")
            if ok:
                for suffix in SIDE_FILES:  # the old journal's: SQLite would read a stale -wal as this file's
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            else:
                remove_journal_files(target)
            os.replace(self.write_path, target)
            sync_directory(target.parent)
            for suffix in SIDE_FILES:
                Path(f"{self.write_path}{suffix}").unlink(missing_ok=True)
            return target
        finally:
            self.lock.release()

    def discard(self) -> None:
        """Remove what the run wrote (a run that never started: no journal
        at all, and a journal it would have replaced stays as it was) and
        release the lock."""
        try:
            remove_journal_files(self.write_path)
            remove_journal_files(staging_path(self.write_path))
        finally:
            self.lock.release()


def place_journal(path: str | os.PathLike[str], overwrite: bool) -> Placement:
    """Lock ``path`` for a new journal. An existing journal is refused
    unless ``overwrite``, and then kept until the new one is sealed."""
    target = Path(path)
    lock = WriterLock(target)
    try:
        exists = target.exists() and target.stat().st_size > 0
        if exists and not overwrite:
            raise FileExistsError(f"{target}: journal already exists (use a new path or overwrite)")
        if not exists:
            remove_journal_files(target)
            return Placement(target, target, lock)
        partial = target.with_name(target.name + ".partial")
        remove_journal_files(partial)  # a replacement that was killed: its run is lost with it
        return Placement(target, partial, lock)
    except BaseException:
        lock.release()
        raise
