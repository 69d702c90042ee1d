"""Environments on disk: ``path`` is a symlink to a complete, versioned directory.

Virtualenvs cannot be moved (shebangs and ``pyvenv.cfg`` hold absolute paths), so a new
environment is built in its final place, ``<path>.d/<id>/``, and ``path`` is switched
to it in one atomic rename of a symlink. ``path`` is therefore always the previous
complete environment or the new complete one. A directory without ``pinfold.json``
is an unfinished build, removed by the next build.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .envlayout import site_packages
from .errors import BuildError, SpecError
from .paths import write_atomic
from .record import STATE_FILE, EnvRecord, write_record

__all__ = ["STATE_FILE", "Environments", "damage"]


def damage(env_dir: Path, installed: Sequence[str]) -> str | None:
    """Why a finished environment is damaged (cheap file checks: no interpreter run), or None."""
    if not (env_dir / "bin" / "python").exists():
        return "its interpreter link is broken"
    site = next(iter(site_packages(env_dir)), None)
    if site is None:
        return "it has no site-packages"

    def norm(text: str) -> str:
        return text.lower().replace("_", "-").replace(".", "-")

    present = {norm(d.name[: -len(".dist-info")]) for d in site.iterdir() if d.name.endswith(".dist-info")}
    missing = [p for p in installed if norm(p.replace("==", "-")) not in present]
    return f"{', '.join(missing[:5])} no longer installed" if missing else None


class Environments:
    """The versioned environments behind one ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.versions = path.with_name(path.name + ".d")

    def current(self) -> Path | None:
        """The complete environment ``path`` points to, or None if there is none yet."""
        if self.path.is_symlink():
            target = self.path.resolve()
            return target if (target / STATE_FILE).is_file() else None
        if self.path.exists():
            raise SpecError(
                f"{self.path} exists and is not a pinfold environment (pinfold keeps `path` as a "
                "symlink to a versioned directory)",
                tip="move it away or choose another `path` in env.yaml; nothing was changed",
            )
        return None

    @contextlib.contextmanager
    def locked(self, *, wait: bool, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the build lock of this ``path``: two builds never interleave."""
        try:
            self.versions.mkdir(parents=True, exist_ok=True)
            fh = open(self.versions / ".lock", "w")  # noqa: SIM115 (closed by the with below)
        except OSError as exc:
            raise BuildError(f"cannot create {self.versions}: {exc.strerror}",
                             tip="`path` in env.yaml must be in a folder you can write to") from None
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if not wait:
                    raise BuildError(f"another pinfold build of {self.path} is running",
                                     tip="wait for it, or run without --no-wait to queue") from None
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def new_dir(self) -> Path:
        """A fresh versioned directory name (not created)."""
        now = time.time()
        # Names sort by build time (rollback relies on it), to the millisecond.
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}"
        return self.versions / f"{stamp}-{secrets.token_hex(3)}"

    def finish(self, env_dir: Path, record: EnvRecord) -> None:
        """Write the record (atomically), then point ``path`` at ``env_dir`` (atomically)."""
        write_record(env_dir, record)
        self.switch(env_dir)

    def finished(self) -> list[Path]:
        """Finished environments, oldest first (their names sort by build time)."""
        if not self.versions.is_dir():
            return []
        return sorted(e for e in self.versions.iterdir()
                      if not e.name.startswith(".") and (e / STATE_FILE).is_file())

    def switch(self, env_dir: Path) -> None:
        """Point ``path`` at ``env_dir`` in one atomic rename of a new symlink."""
        link = self.path.with_name(f".{self.path.name}.{secrets.token_hex(3)}.tmp")
        os.symlink(os.path.relpath(env_dir, self.path.parent), link)
        os.replace(link, self.path)

    def rollback(self) -> tuple[Path, Path]:
        """Switch back to the finished environment built before the current one."""
        current = self.current()
        older = [e for e in self.finished() if current is None or e.name < current.name]
        if current is None or not older:
            raise BuildError(f"{self.path} has no earlier environment to roll back to",
                             tip="`pinfold gc` and builds keep a few; none is left")
        self.switch(older[-1])
        return current, older[-1]

    def clone(self, src: Path, dst: Path) -> int:
        """Copy ``src`` to ``dst`` as hard links, then rewrite the files that name ``src``.

        Hard links keep every unchanged file's inode (and mtime, so Twisted plugin caches
        stay fresh). pip, the plugin stage and byte-compilation replace files rather than
        write into them, so the previous environment is never changed through a link.
        Only the scripts in bin/ and pyvenv.cfg hold the environment's own path; they are
        written anew (new inodes). Returns the number of files linked.
        """
        count = 0
        old, new = str(src), str(dst)
        for root, dirs, files in os.walk(src):
            target = Path(new + root[len(old):])
            target.mkdir(exist_ok=True)
            for name in dirs:
                if (Path(root) / name).is_symlink():
                    files.append(name)
            dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]
            for name in files:
                source = Path(root) / name
                if source.is_symlink():
                    link = os.readlink(source)
                    if link.startswith(old + os.sep):
                        link = new + link[len(old):]
                    os.symlink(link, target / name)
                else:
                    os.link(source, target / name)
                    count += 1
        for path in [dst / "pyvenv.cfg", *(dst / "bin").iterdir()]:
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            if old.encode() in data:
                # A new inode: the previous environment's file (a hard link) stays as it was.
                write_atomic(path, data.replace(old.encode(), new.encode()), like=path)
        return count

    def cleanup(self, *, keep: int = 3) -> list[Path]:
        """Remove unfinished builds and all but the newest ``keep`` finished ones (never the current)."""
        current = self.current()
        removed = []
        for entry in sorted(self.versions.iterdir()) if self.versions.is_dir() else []:
            if entry.name.startswith(".") or not entry.is_dir() or (entry / STATE_FILE).is_file():
                continue
            # Unfinished: a build that failed or was killed.
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
        finished = self.finished()
        for entry in finished[:-keep] if keep else finished:
            if entry != current:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        return removed
