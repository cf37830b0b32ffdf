"""Files the tool writes: whole or not at all, and only where the user said.

Every output (an export, a drawing, a prompts file, a plot) is written to a temporary file in the target's own
folder and renamed into place (``os.replace`` is atomic within a file system), so a full disk, a crash or Ctrl-C
leaves either the old file or the new one, never half of one; a failure is one ``OutputError`` line naming the
file. File names made from circuit names go through ``safe_name`` and ``inside``, so that no name (``../x``, an
absolute path, unicode) puts a file outside the folder the user gave.

Torch-free: the catalog uses it too.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union

from discovery.errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def describe(err: OSError, path: PathLike) -> str:
    """An OSError on ``path`` as one line: which file and why, and the missing folder if that is the cause."""
    target = Path(path)
    reason = err.strerror or type(err).__name__
    if isinstance(err, FileNotFoundError) and not target.parent.exists():
        return f"cannot write {target}: the folder {target.parent} does not exist"
    return f"cannot write {target}: {reason}"


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds, removed when
    it fails. OSErrors become one ``OutputError`` line."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is a folder; name a file")
    if target.exists() and not target.is_file():  # a device (/dev/full), a pipe: never replaced by a file
        raise OutputError(f"cannot write {target}: not a regular file")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or ".")
        os.close(fd)
    except OSError as err:
        raise OutputError(describe(err, target)) from None
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(describe(err, target)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    """The permissions a plain ``open(target, "w")`` would leave: the replaced file's, else 0666 less the umask
    (``mkstemp`` makes its file 0600, which would hide every export and drawing from the user's group)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_text_atomic(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def safe_name(name: str) -> str:
    """A file-name stem made from any circuit name: runs of characters other than ASCII letters, digits and
    ``._+-`` become ``_``, leading dots are dropped (no hidden files, no ``..``)."""
    stem = _UNSAFE.sub("_", name).lstrip(".")
    return stem or "_"


def inside(folder: PathLike, file_name: str) -> Path:
    """``folder / file_name``, refusing (OutputError) anything that would land outside ``folder``."""
    base = Path(folder).resolve()
    path = (base / file_name).resolve()
    if path.parent != base:
        raise OutputError(f"refusing to write {file_name!r}: it would land outside {folder}")
    return path
