"""The output lock: one writer per output, whatever path leads to it.

The lock is ``fcntl.flock`` on the file ``<real path>.lock`` (the real path: a symlink to
the output gets the same lock), taken without waiting.  The kernel drops it when its
process dies (SIGKILL included), so a lock file left by a dead writer is simply taken over
-- no stale-lock check, no race.  The file holds the owner's pid, host and start time for
the message a second writer gets.  ``flock`` is also honoured across NFS clients (Linux
emulates it with POSIX locks there).
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from dataclasses import dataclass, field

from ..errors import InputError


class OutputLockedError(InputError):
    """Another job is writing the same output."""


def real_output_path(path) -> str:
    """Absolute path of ``path`` with every symlink resolved (the output's identity)."""
    return os.path.realpath(os.path.abspath(os.fspath(path)))


@dataclass
class OutputLock:
    """An exclusive lock on the output ``path`` (file ``<real path>.lock``)."""

    path: str
    lock_path: str = field(init=False)
    held: bool = field(default=False, init=False)
    _fd: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.path = os.fspath(self.path)
        self.lock_path = real_output_path(self.path) + ".lock"

    def acquire(self) -> "OutputLock":
        parent = os.path.dirname(self.lock_path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the output's directory: {exc.strerror}",
                             path=self.path, argument="output") from None
        for _ in range(10):
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._refuse()
            if self._same_file(fd):
                self._fd, self.held = fd, True
                self._write_owner(fd)
                return self
            os.close(fd)  # the file was replaced while we locked it: lock the new one
        raise OutputLockedError(f"could not take the lock {self.lock_path}", path=self.path,
                                argument="output")

    def _open(self) -> int:
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise InputError(f"cannot create the lock file {self.lock_path}: {exc.strerror}",
                             path=self.path, argument="output") from None

    def _same_file(self, fd: int) -> bool:
        try:
            st = os.stat(self.lock_path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _write_owner(self, fd: int) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "time": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)

    def owner(self) -> dict | None:
        """pid, host and time of the lock's holder (as it wrote them), or None."""
        try:
            with open(self.lock_path) as f:
                owner = json.load(f)
            return owner if isinstance(owner, dict) else None
        except (OSError, ValueError):
            return None

    def _refuse(self):
        owner = self.owner()
        who = "an unknown process" if owner is None else \
            f"pid {owner.get('pid')} on {owner.get('host')} since {owner.get('time')}"
        raise OutputLockedError(f"another job is writing this output ({who}); wait for it",
                                path=self.path, argument="output") from None

    def release(self) -> None:
        if not self.held:
            return
        try:
            if self._same_file(self._fd):
                os.unlink(self.lock_path)  # still locked: nobody holds a newer lock file
        except FileNotFoundError:
            pass
        finally:
            os.close(self._fd)
            self._fd, self.held = None, False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def is_locked(lock_path: str) -> bool:
    """Whether some process holds the flock of ``lock_path`` right now."""
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
