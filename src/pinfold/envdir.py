"""Environments on disk: ``path`` is a symlink to a complete, versioned directory.

Virtualenvs cannot be moved (shebangs and ``pyvenv.cfg`` hold absolute paths), so a new
environment is built in its final place, ``<path>.d/<id>/``, and ``path`` is switched
to it in one atomic rename of a symlink. ``path`` is therefore always the previous
complete environment or the new complete one.

pinfold only ever deletes what it can prove it created: each versioned directory gets a
marker (:data:`MARKER`, naming the directory) when it is created, before anything else goes
in, and every removal checks it (a spare's, its own flag naming it). A marked directory
without ``pinfold.json`` is an unfinished build (failed or killed), removed by the next
build. An environment of an earlier pinfold (no marker) counts as pinfold's when its
``pinfold.json`` is a record pinfold can read. Anything else under ``<path>.d`` is left
alone and named; a ``<path>.d`` that is a symlink is refused outright.

The environment a build's cleanup lets go is kept as a spare (:data:`SPARE`): no
environment any more (its record is removed first), its folders moved into the next
update's new directory and made to match the environment that update clones.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .envlayout import STATE_FILE
from .errors import BuildError, CommandError, SpecError
from .paths import write_atomic

TYPE_CHECKING = False  # not typing's: see pinfold.errors
if TYPE_CHECKING:
    from typing import Any

    from .manifest import HashMemo
    from .record import EnvRecord

__all__ = ["MARKER", "PENDING", "PYC_STAMPS", "SPARE", "STATE_FILE", "Cleanup", "Cloned", "Environments",
           "is_marked", "is_spare"]

#: The file pinfold writes first into each versioned directory it creates: its proof of
#: authorship. Nothing under ``<path>.d`` without it (or, for an environment of an earlier
#: pinfold, without a readable record) is ever removed.
MARKER = ".pinfold-build"
#: Beside the record of a directory whose probes have not passed yet: ``pinfold unpack``
#: writes the record before its probes (they read it), so a kill during them must not leave
#: a directory that looks finished (rollback would switch to it). Removed before the switch.
PENDING = ".pinfold-pending"
#: The compile stage's stamps (``pinfold/inside/compile.py``): which sources and pycs it found
#: valid, by inode, size and mtime. An update's compile stage reads the previous
#: environment's; the clone does not carry it (an environment whose compile stage is
#: skipped must not hold an older environment's).
PYC_STAMPS = ".pinfold-pyc-stamps"
#: The build lock, in ``<path>.d``.
_LOCK = ".lock"
#: In the folder of a retired environment that a build's cleanup keeps (``<path>.d/.spare-<id>``,
#: at most one): its record removed (it is no environment any more), this file naming the
#: folder it is in. The next update's clone moves its folders into the new environment and
#: makes them match (:meth:`Environments.clone`); ``pinfold gc`` removes it.
SPARE = ".pinfold-spare"
_SPARE_PREFIX = ".spare-"


def _marker_text(env_dir: Path) -> bytes:
    # The directory's own name: a marker copied along with a folder does not vouch for the copy.
    return f"pinfold build directory {env_dir.name}\n".encode()


def _holds(folder: Path, name: str, text: bytes) -> bool:
    """Whether ``folder/name`` is a small regular file of exactly ``text``."""
    try:
        info = (folder / name).lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > 4096:
            return False
        return (folder / name).read_bytes() == text
    except OSError:
        return False


def is_marked(env_dir: Path) -> bool:
    """Whether ``env_dir`` carries pinfold's marker for that very directory (a regular file)."""
    return _holds(env_dir, MARKER, _marker_text(env_dir))


def _spare_text(folder: Path) -> bytes:
    return f"pinfold spare folders {folder.name}\n".encode()


def is_spare(folder: Path) -> bool:
    """Whether ``folder`` is a retired environment's folders a cleanup kept (:data:`SPARE`)."""
    return (folder.name.startswith(_SPARE_PREFIX) and not folder.is_symlink()
            and _holds(folder, SPARE, _spare_text(folder)))


class Cloned:  # a plain class: see pinfold.errors.Problem
    """What a clone did: ``files`` linked (or found linked already), ``folders`` reused from a
    retired environment instead of created."""

    __slots__ = ("files", "folders")

    def __init__(self, files: int, folders: int) -> None:
        self.files = files
        self.folders = folders


class Cleanup:  # a plain class: see pinfold.errors.Problem
    """What a cleanup removed (``removed``: unfinished builds, old environments; ``spares``: the
    folders of environments retired earlier, :data:`SPARE`), and what it left alone under
    ``<path>.d`` (``warnings``: one sentence per entry, not provably pinfold's)."""

    __slots__ = ("removed", "spares", "warnings")

    def __init__(self, removed: tuple[Path, ...] = (), warnings: tuple[str, ...] = (),
                 spares: tuple[Path, ...] = ()) -> None:
        self.removed = removed
        self.warnings = warnings
        self.spares = spares


class Environments:
    """The versioned environments behind one ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.versions = path.with_name(path.name + ".d")

    def _own_versions(self) -> None:
        """Refuse a ``<path>.d`` that is not a folder of pinfold's own (a symlink, a file)."""
        if self.versions.is_symlink():
            raise SpecError(
                f"{self.versions} is a symlink; pinfold keeps its builds in a folder of its own",
                tip=f"remove the symlink {self.versions} (what it points to is not pinfold's) or "
                    "choose another `path` in env.yaml; nothing was changed",
            )

    def is_pinfolds(self, env_dir: Path) -> bool:
        """Whether ``env_dir`` is a finished environment pinfold built: marked, or an earlier
        pinfold's (no marker) with a record pinfold can read."""
        if env_dir.is_symlink() or not (env_dir / STATE_FILE).is_file():
            return False
        if os.path.lexists(env_dir / PENDING):  # placed, but its probes never passed
            return False
        if is_marked(env_dir):
            return True
        # Lazy: the record's reader and its types, which the no-op fast path does without
        # (an environment of today's pinfold is marked).
        from .record import read_record

        return read_record(env_dir) is not None

    def current(self) -> Path | None:
        """The complete environment ``path`` points to, or None if there is none yet.

        Raises :class:`SpecError` when ``path`` (or ``<path>.d``) is not pinfold's: a plain
        directory, or a symlink to a folder that is not a pinfold environment.
        """
        self._own_versions()
        if self.path.is_symlink():
            target = self.path.resolve()
            if self.is_pinfolds(target):
                return target
            if not target.exists() or is_marked(target):
                # Nothing there (the folder was removed by hand), or a build of pinfold's that
                # never finished: there is no environment, and the next build repoints `path`.
                return None
            why = ("its pinfold.json is not a record pinfold wrote" if (target / STATE_FILE).exists()
                   else "it has no pinfold.json")
            raise SpecError(
                f"{self.path} points to {target}, which is not a pinfold environment ({why})",
                tip=f"remove the symlink {self.path} or choose another `path` in env.yaml; "
                    "nothing was changed",
            )
        if self.path.exists():
            raise SpecError(
                f"{self.path} exists and is not a pinfold environment (pinfold keeps `path` as a "
                "symlink to a versioned directory)",
                tip="move it away or choose another `path` in env.yaml; nothing was changed",
            )
        return None

    @contextlib.contextmanager
    def locked(self, *, wait: bool, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the build lock of this ``path``: two builds never interleave.

        A ``path`` or ``<path>.d`` that is not pinfold's is refused before anything is created.
        """
        self.current()
        try:
            self.versions.mkdir(parents=True, exist_ok=True)
            fh = open(self.versions / _LOCK, "w")  # noqa: SIM115 (closed by the with below)
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
        return self.versions / f"{stamp}-{os.urandom(3).hex()}"

    def create(self, env_dir: Path) -> None:
        """Create the versioned directory ``env_dir`` holding pinfold's marker, and nothing else."""
        try:
            env_dir.mkdir()
        except OSError as exc:
            raise BuildError(f"cannot create {env_dir}: {exc.strerror}") from None
        try:
            write_atomic(env_dir / MARKER, _marker_text(env_dir))
        except OSError as exc:
            import shutil  # lazy: the no-op fast path imports this module, and removes nothing

            shutil.rmtree(env_dir, ignore_errors=True)  # created just now, by this call
            raise BuildError(f"cannot write into {env_dir}: {exc.strerror}") from None

    def discard(self, env_dir: Path) -> bool:
        """Remove ``env_dir`` if it carries pinfold's marker (a failed build); else leave it."""
        if env_dir.is_symlink() or not is_marked(env_dir):
            return False
        # Called while another error is on its way out: that one is the user's news. What
        # could not be removed stays marked, and the next cleanup removes it.
        try:
            _remove_marked(env_dir)
        except OSError:
            return False
        return True

    def has_leftovers(self) -> bool:
        """Whether ``<path>.d`` holds an unfinished build of pinfold's (marked, no record): one
        listing and a small read per entry, cheap enough for the no-op fast path (which then
        hands over to a build that cleans up). Entries that are not pinfold's are not counted:
        cleanup never removes them, so counting them would send every no-op down the full path."""
        try:
            names = os.listdir(self.versions)
        except OSError:
            return False
        for name in names:
            entry = self.versions / name
            if name == _LOCK or entry.is_symlink() or (
                    (entry / STATE_FILE).is_file() and not os.path.lexists(entry / PENDING)):
                continue
            if is_marked(entry):
                return True
        return False

    def finish(self, env_dir: Path, record: EnvRecord) -> None:
        """Write the record (atomically), then point ``path`` at ``env_dir`` (atomically)."""
        from .record import write_record  # lazy: see is_pinfolds

        write_record(env_dir, record)
        self.switch(env_dir)

    def finished(self) -> list[Path]:
        """Finished environments, oldest first (their names sort by build time)."""
        if not self.versions.is_dir():
            return []
        return sorted(e for e in self.versions.iterdir()
                      if not e.name.startswith(".") and self.is_pinfolds(e))

    def switch(self, env_dir: Path) -> None:
        """Point ``path`` at ``env_dir`` in one atomic rename of a new symlink."""
        link = self.path.with_name(f".{self.path.name}.{os.urandom(3).hex()}.tmp")
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

    def clone(self, src: Path, dst: Path, memo: HashMemo | None = None) -> Cloned:
        """Copy ``src`` to ``dst`` as hard links, then rewrite the files that name ``src``.

        Hard links keep every unchanged file's inode (and mtime, so Twisted plugin caches
        stay fresh). pip, the plugin stage and byte-compilation replace files rather than
        write into them, so the previous environment is never changed through a link.
        Only the scripts in bin/ and pyvenv.cfg hold the environment's own path (and its
        name: virtualenv's prompt); they are written anew (new inodes). With ``memo``, each
        linked file whose identity is the one ``src``'s build recorded keeps its hashes
        (:meth:`HashMemo.inherit`).

        When a cleanup kept a retired environment's folders (:data:`SPARE`), they are moved
        into ``dst`` first and made to match ``src``: a file already linked to ``src``'s
        inode stays, anything else there is replaced or removed, a folder stays only if its
        owner, group and mode are those ``mkdir`` gives there. The files, links and folders are those a
        clone into empty folders makes, without creating thousands of folders (on ext4 the
        slowest part of a clone: 2,110 folders took 0.2-0.3 s by hand on a quiet disk, up to
        1.8 s right after many were removed; their 16,630 links 0.16 s). Where something of
        the spare's cannot be removed, ``dst`` is set aside as an unfinished build's and the
        clone starts over in new folders.
        """
        from .manifest import HASHES_FILE  # lazy: the no-op fast path clones nothing

        known = memo.inherit(src) if memo is not None else {}
        # The files a clone never carries: the new directory has its own marker; its record is
        # written when it is finished (a clone holding the old record would look finished if
        # the update were killed), its hashes once its files are scanned.
        skip = {MARKER, STATE_FILE, HASHES_FILE, PYC_STAMPS}
        reuse = self._take_spare(dst)
        try:
            files, folders = _link_tree(str(src), str(dst), memo, known, skip, reuse=reuse)
        except OSError as exc:
            if not reuse or exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # not the spare's doing: a clone into new folders would fail the same way
            # Something of the spare's could not be removed: what is in the new directory
            # goes into another one, marked as an unfinished build's before anything moves
            # (a cleanup removes it, or names what it cannot), and the clone starts over.
            if memo is not None:
                memo.forget_adopted()
            aside = self.new_dir()
            self.create(aside)
            for name in os.listdir(dst):
                if name != MARKER:
                    os.rename(dst / name, aside / name)
            files, folders = _link_tree(str(src), str(dst), memo, known, skip, reuse=False)
        old, new = str(src), str(dst)
        # virtualenv's prompt in the activate scripts is the directory's bare name: the new
        # one's, as a fresh build writes it (the digest reads it as <env-name> only then).
        # Only a name as new_dir() makes it (a time stamp): a short one could be any word.
        prompt = src.name.encode() if len(src.name) >= 20 else None
        for path in [dst / "pyvenv.cfg", *(dst / "bin").iterdir()]:
            if path.is_symlink() or not path.is_file():
                continue
            data = path.read_bytes()
            named = prompt is not None and path.name.startswith("activate") and prompt in data
            if old.encode() in data or named:
                # A new inode: the previous environment's file (a hard link) stays as it was.
                data = data.replace(old.encode(), new.encode())
                if named and prompt is not None:
                    data = data.replace(prompt, dst.name.encode())
                write_atomic(path, data, like=path)
        if memo is not None:
            memo.settle(dst)
        return Cloned(files, folders)

    def spares(self) -> list[Path]:
        """The retired environments' folders a cleanup kept for the next clone, oldest first."""
        try:
            names = os.listdir(self.versions)
        except OSError:
            return []
        return sorted(self.versions / n for n in names
                      if n.startswith(_SPARE_PREFIX) and is_spare(self.versions / n))

    def _take_spare(self, dst: Path) -> bool:
        """Move the newest spare's folders into ``dst`` (holding only its marker), remove the
        rest of it; whether any came along."""
        spares = self.spares()
        if not spares:
            return False
        spare, moved = spares[-1], False
        try:
            # Made by this user: a folder of another's would keep its owner in the new tree.
            if spare.lstat().st_uid == os.geteuid():
                for name in sorted(os.listdir(spare)):
                    child = spare / name
                    if child.is_symlink() or not child.is_dir():
                        continue  # the files at the top are few: the clone links them anew
                    os.rename(child, dst / name)
                    moved = True
        except OSError:
            pass
        # What is left is a few files and its flag (last, as the marker of a removal).
        with contextlib.suppress(OSError):
            _remove_marked(spare, last=SPARE)
        return moved

    def cleanup(self, *, keep: int = 3, spare: bool = False) -> Cleanup:
        """Remove unfinished builds and all but the newest ``keep`` finished ones (never the current).

        Only what carries pinfold's marker (or is an earlier pinfold's finished environment) is
        removed; everything else under ``<path>.d`` is left alone and named in the warnings.
        With ``spare`` (a build's cleanup), the newest of the environments to go is retired
        instead, its folders kept for the next update's clone (:data:`SPARE`; one at most, an
        older one is removed); without it (``pinfold gc``, an unpack) every spare is removed.
        """
        current = self.current()
        removed: list[Path] = []
        warnings: list[str] = []
        finished: list[Path] = []
        spares: list[Path] = []

        def remove(entry: Path, *, last: str = MARKER) -> bool:
            # A cleanup runs after a build succeeded: what it cannot remove is named, not raised.
            try:
                if last == MARKER and not is_marked(entry):
                    # An earlier pinfold's environment: marked first, so that a removal cut
                    # short leaves a directory the next cleanup recognises.
                    (entry / MARKER).write_bytes(_marker_text(entry))
                _remove_marked(entry, last=last)
            except OSError as exc:
                warnings.append(f"{entry} could not be removed: {exc.strerror}")
                return False
            return True

        for entry in sorted(self.versions.iterdir()) if self.versions.is_dir() else []:
            if entry.name == _LOCK:
                continue
            if self.is_pinfolds(entry):
                finished.append(entry)
            elif is_spare(entry):
                spares.append(entry)
            elif not entry.is_symlink() and entry.is_dir() and is_marked(entry):
                # Unfinished: a build that failed or was killed.
                if remove(entry):
                    removed.append(entry)
            elif not entry.is_symlink() and entry.is_dir() and not (entry / STATE_FILE).exists() \
                    and (entry / "pyvenv.cfg").is_file():
                warnings.append(f"{entry} looks like an unfinished build of an earlier pinfold, "
                                "but carries no pinfold marker: left alone (remove it yourself)")
            else:
                warnings.append(f"{entry} is not a build of pinfold's (it carries no pinfold "
                                "marker): left alone")
        old = [e for e in (finished[:-keep] if keep else finished) if e != current]
        for n, entry in enumerate(old, 1):
            if n == len(old) and spare and (retired := self._retire(entry)) is not None:
                spares.append(retired)
                removed.append(entry)
            elif remove(entry):
                removed.append(entry)
        # Not counted as removed: a spare is no environment (its own was counted when retired).
        gone = [e for e in (sorted(spares)[:-1] if spare else spares) if remove(e, last=SPARE)]
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            if stale.is_symlink():  # switch() makes these; a file of that name is not pinfold's
                stale.unlink(missing_ok=True)
        return Cleanup(removed=tuple(removed), warnings=tuple(warnings), spares=tuple(gone))

    def _retire(self, env_dir: Path) -> Path | None:
        """Turn the finished environment ``env_dir`` (to be removed) into a spare; its path, or
        None where it cannot be (the caller removes it)."""
        spare = self.versions / (_SPARE_PREFIX + env_dir.name)
        try:
            # Only today's pinfold's and this user's own (see _take_spare).
            if os.path.lexists(spare) or not is_marked(env_dir) or env_dir.lstat().st_uid != os.geteuid():
                return None
            # The record goes first: from then on it is no environment (no rollback lands on
            # it) but a marked, unfinished folder, which a cleanup removes should a kill come
            # before the rename. The flag names the folder's next name.
            (env_dir / STATE_FILE).unlink()
            write_atomic(env_dir / SPARE, _spare_text(spare))
            os.rename(env_dir, spare)
        except OSError:
            return None
        return spare


def _bookkeeping(name: str) -> bool:
    """Whether the top-level ``name`` is pinfold's own file (or a temporary one of its
    record's: an atomic write cut short), which a clone does not carry."""
    from .manifest import is_bookkeeping  # lazy: see clone

    return is_bookkeeping(name) or (name.startswith(f".{STATE_FILE}.") and name.endswith(".tmp"))


def _link_tree(old: str, new: str, memo: HashMemo | None, known: dict[str, Any], skip: set[str], *,
               reuse: bool) -> tuple[int, int]:
    """Hard-link the tree ``old`` into ``new`` (which exists, holding its marker); with
    ``reuse``, what is in ``new`` already (a spare's folders) is made to match. Returns the
    files linked or found linked, and the folders found in place."""
    prefix = old + os.sep
    files = folders = 0
    # A folder is reused only as mkdir makes one here: the owner, group and mode (the umask,
    # a setgid bit, a default ACL) of ``new`` itself, which mkdir made in <path>.d just now.
    made = os.lstat(new)
    like = (made.st_uid, made.st_gid, stat.S_IMODE(made.st_mode))
    # Plain strings and os.scandir, no pathlib: this runs once per file of the environment
    # (16,000+ in the benchmark's) on every update, where pathlib's parsing doubled the cost.
    stack = [(old, new, "", True)]
    while stack:
        source_dir, target_dir, rel_dir, there_already = stack.pop()
        top = not rel_dir
        if not there_already:
            os.mkdir(target_dir)
        have: dict[str, os.DirEntry[str]] = {}
        if reuse and there_already:
            if not top:
                folders += 1
            with os.scandir(target_dir) as it:
                have = {e.name: e for e in it}
            if top:
                have.pop(MARKER, None)  # the new directory's own
        with os.scandir(source_dir) as it:
            entries = list(it)
        for entry in entries:
            name = entry.name
            if top and (name in skip or _bookkeeping(name)):
                continue
            target = os.path.join(target_dir, name)
            there = have.pop(name, None) if have else None
            if entry.is_symlink():  # a symlinked folder too: a link, never a tree to copy
                link = os.readlink(entry.path)
                if link.startswith(prefix):
                    link = new + link[len(old):]
                if there is not None:
                    if there.is_symlink() and os.readlink(there.path) == link:
                        continue
                    _drop(there)
                os.symlink(link, target)
            elif entry.is_dir(follow_symlinks=False):
                folder = there is not None and there.is_dir(follow_symlinks=False)
                if folder and there is not None:
                    info = there.stat(follow_symlinks=False)
                    folder = (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == like
                if there is not None and not folder:
                    _drop(there)
                stack.append((entry.path, target, f"{rel_dir}{name}/", folder))
            else:
                rel = rel_dir + name
                carried = known.get(rel) if known else None
                before = None
                # The source's identity just before the link (the link changes its ctime).
                if carried is not None and memo is not None:
                    before = os.lstat(entry.path)
                    if not memo.unchanged(carried, before):
                        carried = None
                if there is not None:
                    if there.is_file(follow_symlinks=False):
                        info = there.stat(follow_symlinks=False)
                        source = before or entry.stat(follow_symlinks=False)
                        if info.st_ino == source.st_ino and info.st_dev == source.st_dev:
                            files += 1  # the same inode: what a link would make
                            if carried is not None and memo is not None:
                                memo.adopt(rel, carried, info)
                            continue
                    _drop(there)
                os.link(entry.path, target, follow_symlinks=False)
                files += 1
                if carried is not None and memo is not None:
                    memo.adopt(rel, carried, os.lstat(target))
        for there in have.values():  # what src does not have
            _drop(there)
    return files, folders


def _drop(entry: os.DirEntry[str]) -> None:
    """Remove a spare's file, link or folder that the tree being cloned does not have."""
    if entry.is_dir(follow_symlinks=False):
        import shutil  # lazy: see clone

        shutil.rmtree(entry.path)
    else:
        os.unlink(entry.path)


def _remove_marked(env_dir: Path, *, last: str = MARKER) -> None:
    """Remove a marked directory: its record first (it is no longer finished), its marker
    (``last``: a spare's flag) last (a removal cut short leaves a marked, unfinished
    directory, or a spare: the next cleanup ends it).

    Raises OSError when something could not be removed; ``last`` then stays."""
    (env_dir / STATE_FILE).unlink(missing_ok=True)
    trees = []
    for child in env_dir.iterdir():
        if child.name == last:
            continue
        if child.is_dir() and not child.is_symlink():
            trees.append(child)
        else:
            child.unlink(missing_ok=True)
    _remove_trees(trees)
    if left := [t for t in trees if os.path.lexists(t)]:
        raise OSError(errno.ENOTEMPTY, f"{left[0]} is still there", str(left[0]))
    (env_dir / last).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        env_dir.rmdir()


#: Fewer folders than this a few levels down: one ``rm`` (measured only for whole environments,
#: where site-packages holds hundreds; a small tree is not worth a second process).
_SPLIT_AT = 64


def _cores() -> int:
    """The processors this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _remove_trees(trees: list[Path]) -> None:
    """Remove folder trees; what cannot be removed is left in place (the caller looks).

    An environment has about 17,000 files for 120 distributions, removed in the build's own
    time (by ``pinfold gc``, an unpack, a failed build; a build's cleanup keeps the one it
    lets go as a spare, and removes an older spare: see :meth:`Environments.cleanup`).
    Measured on 2 cores (ext4): shutil.rmtree 0.29-0.39 s, one ``rm -rf`` 0.29-0.35 s, two
    ``rm -rf`` at once on halves of the tree's folders 0.19-0.23 s (the kernel's unlinks in
    different folders run side by side). So with a second core the folders a few levels down
    (site-packages' distributions) are split in two and removed by two ``rm -rf`` at once,
    through the runner, then what is left by one more; the system's own ``rm`` (from the
    default PATH, never a wrapper of the user's). Anything that goes wrong there ends in
    shutil.rmtree. Unlike shutil.rmtree, ``rm`` is given paths, not open folders: a folder
    swapped for a symlink by another process between the listing and the removal would be
    followed (inside an environment no build uses any more, under the build lock).
    """
    import shutil  # lazy: the no-op fast path imports this module and removes nothing

    rm = shutil.which("rm", path=os.defpath)
    if rm is not None and _cores() > 1:
        with contextlib.suppress(CommandError, RuntimeError, OSError):
            halves = _halves([str(t) for t in trees])
            if halves is not None:
                _rm_in_two(rm, *halves)
        with contextlib.suppress(CommandError, RuntimeError, OSError):
            if left := [str(t) for t in trees if os.path.lexists(t)]:
                _rm(rm, left)
    for tree in trees:
        if os.path.lexists(tree):
            shutil.rmtree(tree, ignore_errors=True)


def _halves(entries: list[str]) -> tuple[list[str], list[str]] | None:
    """The entries of the first level (at most 4 down) that holds :data:`_SPLIT_AT` folders,
    in two halves for two command lines, or None (too few, or too long a command line)."""
    for depth in range(5):  # env/lib/python3.X/site-packages/<distributions>: depth 3
        if sum(1 for e in entries if os.path.isdir(e) and not os.path.islink(e)) >= _SPLIT_AT:
            break
        if depth == 4:
            return None
        deeper = []
        for entry in entries:
            try:
                if os.path.isdir(entry) and not os.path.islink(entry):
                    deeper += [os.path.join(entry, n) for n in sorted(os.listdir(entry))]
                    continue
            except OSError:
                pass
            deeper.append(entry)
        entries = deeper
    try:  # the arguments and the environment share the limit: a quarter of it each at most
        limit = os.sysconf("SC_ARG_MAX") // 4
    except (ValueError, OSError):
        limit = 128 * 1024
    one, two = entries[0::2], entries[1::2]
    if max(sum(len(os.fsencode(e)) + 1 for e in half) for half in (one, two)) > limit:
        return None
    return one, two


def _rm(rm: str, paths: list[str]) -> None:
    from .runner import Runner  # lazy: see _remove_trees

    Runner().run([rm, "-rf", "--", *paths], what="removing an environment", timeout=600)


def _rm_in_two(rm: str, one: list[str], two: list[str]) -> None:
    """Two ``rm -rf`` at once; raises the first's CommandError."""
    import threading

    failed: list[BaseException] = []

    def other() -> None:
        try:
            _rm(rm, two)
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    # Not a daemon: pinfold does not exit while the other rm runs (a stop ends it first).
    thread = threading.Thread(target=other, name="pinfold-remove")
    thread.start()
    try:
        _rm(rm, one)
    finally:
        thread.join()
    if failed:
        raise failed[0]
