"""Durable file replacement: the steps a file the node relies on needs to survive a power cut.

`os.replace` is atomic, but the new directory entry lives in the directory's own data: until the
directory is flushed too, a crash of the operating system can bring back the old file, or no file
at all for a file just created (ext4 and XFS make no promise either way). So every write here
goes: temporary file beside the target, fsync of its data, rename over the target, fsync of the
directory. Used for keystores, the libp2p node key and the files `imagechain devnet` writes.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "replace_durably", "write_atomic"]


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """`os.replace(source, target)`, then flush the target's directory so the rename sticks."""
    os.replace(source, target)
    fsync_dir(Path(target).parent)


def write_atomic(path: str | os.PathLike[str], content: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `content` so that a crash leaves the old file or the new one, whole.

    The file is created with `mode` from its first byte (0600 for secrets: never briefly readable
    by others).
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        replace_durably(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
