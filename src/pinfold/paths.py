"""Paths as env.yaml names them (``path``, ``python``), files read and written safely, paths shown.

Kept apart from :mod:`pinfold.spec` (YAML nodes, locks, ``packaging``) so that the
no-op fast path (:mod:`pinfold.uptodate`) resolves ``path`` and ``python`` exactly as
validation does without importing any of it. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import urllib.parse
from pathlib import Path

__all__ = [
    "MAX_TEXT_BYTES",
    "display_path",
    "env_path",
    "file_url_path",
    "find_python",
    "path_problem",
    "read_bytes",
    "read_text",
    "reason",
    "umask",
    "write_atomic",
]

#: The largest text file pinfold reads (env.yaml, a lock, a needs file): far above any real
#: one (a 2,000-pin lock with every hash is about 2 MB), and a bound for ``/dev/zero``.
MAX_TEXT_BYTES = 32 * 1024 * 1024

#: Longest path and path component Linux accepts (PATH_MAX, NAME_MAX).
_PATH_MAX = 4096
_NAME_MAX = 255


def file_url_path(url: str) -> Path | None:
    """The local path a ``file:`` URL names, or None for any other URL.

    What ``urllib.request.url2pathname`` gives on POSIX (the path, percent-decoded), without
    importing ``urllib.request``: http.client, ssl and email come with it, a tenth of a
    build's start-up, and a build from a wheelhouse folder never opens a URL.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    path = urllib.parse.unquote(parts.path, encoding=sys.getfilesystemencoding(), errors="surrogateescape")
    return Path(path)


def display_path(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except (ValueError, OSError):  # elsewhere, or the working directory is gone
        return str(path)


def path_problem(value: str) -> str | None:
    """Why ``value`` cannot name a file at all (a NUL byte, too long), or None.

    Checked before any ``Path`` operation: the operating system would answer these with
    ``ValueError`` or ``File name too long`` from deep inside a build.
    """
    if "\x00" in value:
        return "contains a NUL character"
    if len(os.fsencode(value)) > _PATH_MAX:
        return f"is longer than {_PATH_MAX} bytes"
    if any(len(os.fsencode(part)) > _NAME_MAX for part in value.split(os.sep)):
        return f"has a name longer than {_NAME_MAX} bytes"
    return None


def read_text(path: Path, *, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes.

    Raises :class:`OSError` (with a readable ``strerror``) for anything else: a FIFO would
    block forever and ``/dev/zero`` would fill memory, so neither is opened.
    Raises :class:`UnicodeDecodeError` for text that is not UTF-8.
    """
    return read_bytes(path, limit=limit).decode("utf-8")


def read_bytes(path: Path, *, limit: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; OSError for anything else
    (see :func:`read_text`)."""
    info = path.stat()  # follows symlinks: a link to a regular file is fine
    if not stat.S_ISREG(info.st_mode):
        raise OSError(0, "not a regular file", str(path))
    if info.st_size > limit:
        raise OSError(0, f"larger than {limit // (1024 * 1024)} MiB", str(path))
    # O_NONBLOCK: if the file was swapped for a FIFO since the stat, open does not block.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(0, f"larger than {limit // (1024 * 1024)} MiB", str(path))
    return data


def env_path(spec_file: Path, value: str) -> Path:
    """``path`` from env.yaml: ``~`` expanded, relative to env.yaml's folder, absolute.

    Its folder is resolved (``path`` itself is pinfold's symlink and stays as it is): a
    project reached through a symlinked directory (``current -> releases/X``) must name
    its environments by one spelling, or the paths written into an environment's scripts
    and the paths an update rewrites would differ.
    """
    path = (spec_file.parent / os.path.expanduser(value)).absolute()
    try:
        return path.parent.resolve() / path.name
    except (OSError, RuntimeError, ValueError):  # a loop, a NUL: validation reports the value
        return path


def find_python(spec_file: Path, value: str | None) -> str | None:
    """``python`` from env.yaml as the interpreter to run, or None when it cannot be found.

    Not given: the interpreter running pinfold. With a slash: a path relative to env.yaml's
    folder (it must be an executable file). Otherwise a command looked up on ``PATH``.
    """
    if value is None:
        return sys.executable
    if path_problem(value) is not None:
        return None
    if os.sep in value:
        path = env_path(spec_file, value)
        try:
            return str(path) if path.is_file() and os.access(path, os.X_OK) else None
        except OSError:  # a symlink loop, a component that is a file
            return None
    return shutil.which(value)


def reason(exc: BaseException) -> str:
    """Why a file could not be read, in words (``OSError.strerror``, not its repr)."""
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc)


def umask() -> int:
    """The process's umask, read without setting it (a child started meanwhile by another
    thread would inherit a changed one); set and restored only where Linux does not say."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes, *, like: Path | None = None, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never half.

    A temporary file beside ``path`` (same file system), then one ``os.replace``: a kill
    leaves at most the temporary file, never a truncated ``path``. The new file gets the
    mode a new file gets under the umask, or that of ``like`` (e.g. the file it replaces)
    when given, or ``mode`` when given (e.g. ``0o755`` for a script). A file that ``path`` was
    a hard link to is left as it was.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if like is not None:
            os.chmod(tmp, stat.S_IMODE(like.stat().st_mode))
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
