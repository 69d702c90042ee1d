"""Versioned environments on disk: pinfold removes only what it can prove it created.

Fast: no pip, no virtualenv. The finished environments here are folders with a record
(and, for today's pinfold, its marker); the real builds are in test_lifecycle_safety.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from pinfold.envdir import MARKER, PENDING, PYC_STAMPS, SPARE, Environments, is_marked, is_spare
from pinfold.record import STATE_FILE, write_record
from tests.conftest import cli, write
from tests.test_record import record


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An env.yaml with an empty lock: loading it and planning start no pip."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wheelhouse").mkdir()
    write(tmp_path / "runtime.txt", "")
    return write(tmp_path / "env.yaml", "path: env\nindex: {find_links: wheelhouse}\n"
                                        "requirements: runtime.txt\n")


def finished(envs: Environments, name: str, *, marked: bool = True) -> Path:
    """A finished environment: marked by today's pinfold, or (marked=False) an earlier one's."""
    env_dir = envs.versions / name
    envs.versions.mkdir(exist_ok=True)
    if marked:
        envs.create(env_dir)
    else:
        env_dir.mkdir()
    write(env_dir / "bin" / "tool", "#!/bin/sh\n")
    write_record(env_dir, record())
    return env_dir


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_the_marker_goes_in_first_and_names_its_folder(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    envs.versions.mkdir()
    env_dir = envs.new_dir()
    envs.create(env_dir)
    assert os.listdir(env_dir) == [MARKER] and is_marked(env_dir)
    # A marker copied along with its folder does not vouch for the copy.
    copy = envs.versions / "copy"
    copy.mkdir()
    (copy / MARKER).write_bytes((env_dir / MARKER).read_bytes())
    assert not is_marked(copy)


def test_cleanup_removes_only_what_is_provably_pinfolds(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    envs.versions.mkdir()
    old_legacy = finished(envs, "20240101-000000000-aaaaaa", marked=False)  # an earlier pinfold's
    kept = [finished(envs, f"2024010{i}-000000000-bbbbbb") for i in (2, 3)]
    envs.switch(kept[-1])
    killed = envs.versions / "20240104-000000000-cccccc"
    envs.create(killed)
    write(killed / "lib" / "half.py", "")
    # Not pinfold's: the user's files, a folder with a record pinfold did not write, and an
    # unmarked unfinished build (an earlier pinfold's, or not: it cannot be told apart).
    write(envs.versions / "project" / "notes.txt", "precious")
    write(envs.versions / "foreign" / STATE_FILE, '{"inputs": 5}')
    write(envs.versions / "20231231-000000000-dddddd" / "pyvenv.cfg", "home = /usr/bin\n")
    done = envs.cleanup(keep=2)
    assert sorted(done.removed) == sorted([old_legacy, killed])
    assert not old_legacy.exists() and not killed.exists()
    assert all(e.is_dir() and is_marked(e) for e in kept)
    assert (envs.versions / "project" / "notes.txt").read_text() == "precious"
    assert (envs.versions / "foreign" / STATE_FILE).is_file()
    assert (envs.versions / "20231231-000000000-dddddd" / "pyvenv.cfg").is_file()
    named = "\n".join(done.warnings)
    assert len(done.warnings) == 3, named
    for name in ("project", "foreign", "20231231-000000000-dddddd"):
        assert f"{envs.versions / name} " in named
    assert "earlier pinfold" in named and "left alone" in named
    # Never counted as environments: rollback cannot land on them.
    assert envs.finished() == kept


def test_a_failed_build_is_discarded_only_with_its_marker(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    envs.versions.mkdir()
    mine = envs.new_dir()
    envs.create(mine)
    write(mine / "bin" / "python", "")
    assert envs.discard(mine) and not mine.exists()
    theirs = write(envs.versions / "theirs" / "notes.txt", "x").parent
    assert not envs.discard(theirs) and (theirs / "notes.txt").exists()


def test_a_clone_gets_its_own_marker_and_no_record_until_finished(tmp_path: Path) -> None:
    """A killed update must leave an unfinished folder, not a copy that looks finished."""
    envs = Environments(tmp_path / "env")
    src = finished(envs, "20240101-000000000-aaaaaa")
    write(src / "pyvenv.cfg", f"home = /usr/bin\nprompt = {src}\n")
    dst = envs.versions / "20240102-000000000-bbbbbb"
    envs.create(dst)
    envs.clone(src, dst)
    assert is_marked(dst) and is_marked(src)
    assert not (dst / STATE_FILE).exists() and (dst / "bin" / "tool").is_file()
    assert str(dst) in (dst / "pyvenv.cfg").read_text()
    assert envs.finished() == [src] and envs.has_leftovers()
    assert envs.cleanup().removed == (dst,)
    assert not envs.has_leftovers()


def test_a_symlinked_versions_folder_is_refused_and_left_untouched(project: Path) -> None:
    root = project.parent
    write(root / "precious" / "project" / "notes.txt", "precious")
    (root / "env.d").symlink_to("precious")
    for command in ("build", "status", "plan", "check", "rollback", "gc"):
        code, _, err = cli(command)
        assert code == 2, (command, err)
        assert "env.d is a symlink; pinfold keeps its builds in a folder of its own" in err, err
        assert "internal error" not in err and "Traceback" not in err
    assert tree(root / "precious") == ["project", "project/notes.txt"]
    assert (root / "precious" / "project" / "notes.txt").read_text() == "precious"
    assert not (root / "env").exists() and not (root / "env").is_symlink()


@pytest.mark.parametrize("command", ["build", "status", "plan", "check", "rollback", "gc"])
def test_path_to_a_foreign_folder_is_not_a_pinfold_environment(project: Path, command: str) -> None:
    root = project.parent
    write(root / "foreign" / STATE_FILE, '{"inputs": 5, "installed": "abc"}')
    write(root / "foreign" / "bin" / "python", "")
    (root / "env").symlink_to("foreign")
    code, out, err = cli(command, "--json") if command != "rollback" else cli(command)
    assert code == 2, (out, err)
    assert f"{root / 'env'} points to {root / 'foreign'}, which is not a pinfold environment" in err, err
    assert "its pinfold.json is not a record pinfold wrote" in err
    assert "remove the symlink" in err  # what to do
    assert "internal error" not in err and "Traceback" not in err
    assert os.readlink(root / "env") == "foreign"
    assert tree(root / "foreign") == ["bin", "bin/python", STATE_FILE]
    assert not (root / "env.d").exists()


@pytest.mark.parametrize("content", ["[]", "garbage", '{"schema": 2}', '{"schema": 99}', ""])
def test_a_record_that_does_not_parse_is_not_a_pinfold_environment(tmp_path: Path, content: str) -> None:
    from pinfold.errors import SpecError

    write(tmp_path / "foreign" / STATE_FILE, content)
    (tmp_path / "env").symlink_to("foreign")
    with pytest.raises(SpecError, match="not a pinfold environment"):
        Environments(tmp_path / "env").current()


def test_an_earlier_pinfolds_environment_is_still_pinfolds(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    legacy = finished(envs, "20240101-000000000-aaaaaa", marked=False)
    envs.switch(legacy)
    assert envs.current() == legacy and envs.finished() == [legacy]
    # path to a folder that was removed by hand: no environment, the next build repoints it.
    envs.switch(envs.versions / "gone")
    assert envs.current() is None


def test_a_directory_whose_probes_never_passed_is_not_finished(tmp_path: Path) -> None:
    """An unpack killed during its probes leaves record and PENDING: rollback must not pick it,
    and the next cleanup removes it like any unfinished build."""
    envs = Environments(tmp_path / "env")
    good = finished(envs, "20240101-000000000-aaaaaa")
    envs.switch(good)
    killed = finished(envs, "20240102-000000000-bbbbbb")
    (killed / PENDING).write_bytes(b"probes not passed yet\n")
    assert not envs.is_pinfolds(killed) and envs.finished() == [good]
    assert envs.has_leftovers()
    assert killed in envs.cleanup().removed and not killed.exists()
    assert envs.current() == good


def test_only_unfinished_entries_count_as_leftovers(tmp_path: Path) -> None:
    envs = Environments(tmp_path / "env")
    assert not envs.has_leftovers()
    finished(envs, "20240101-000000000-aaaaaa")
    (envs.versions / ".lock").touch()
    assert not envs.has_leftovers()
    envs.create(envs.versions / "20240102-000000000-bbbbbb")
    assert envs.has_leftovers()


def test_a_clone_links_every_file_and_keeps_links_as_links(tmp_path: Path) -> None:
    """Nested folders, empty folders, symlinked files and folders; links into the old tree move."""
    envs = Environments(tmp_path / "env")
    src = finished(envs, "20240101-000000000-aaaaaa")
    write(src / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py", "x = 1\n")
    (src / "lib" / "empty").mkdir()
    (src / "lib64").symlink_to("lib")
    (src / "lib" / "inside").symlink_to(src / "lib" / "python3.11")
    (src / "lib" / "outside").symlink_to("/usr/bin")
    write(src / f".{STATE_FILE}.123.tmp", "half a record")
    dst = envs.versions / "20240102-000000000-bbbbbb"
    envs.create(dst)
    count = envs.clone(src, dst).files
    source = src / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    copy = dst / "lib" / "python3.11" / "site-packages" / "pkg" / "__init__.py"
    assert copy.stat().st_ino == source.stat().st_ino
    assert (dst / "lib" / "empty").is_dir() and not (dst / "lib" / "empty").is_symlink()
    assert os.readlink(dst / "lib64") == "lib"
    assert os.readlink(dst / "lib" / "inside") == str(dst / "lib" / "python3.11")
    assert os.readlink(dst / "lib" / "outside") == "/usr/bin"
    assert not (dst / f".{STATE_FILE}.123.tmp").exists()
    linked = [p for p in dst.rglob("*") if p.is_file() and not p.is_symlink() and p.name != MARKER]
    assert count == len(linked)


@pytest.mark.parametrize("with_rm", [True, False])
def test_an_old_environment_is_removed_whole_never_what_its_links_point_at(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_rm: bool) -> None:
    """The removal of a large environment (two ``rm -rf`` at once on its site-packages'
    entries, then the rest; shutil.rmtree where there is no ``rm``): every file goes, odd
    names included, and a symlink is removed, never followed."""
    import pinfold.envdir

    if with_rm and pinfold.envdir._cores() < 2:
        pytest.skip("one processor here: the removal is shutil.rmtree alone")
    if not with_rm:
        monkeypatch.setattr(os, "defpath", str(tmp_path / "no-tools"))
    calls: list[list[str]] = []
    real_rm = pinfold.envdir._rm

    def rm(tool: str, paths: list[str]) -> None:
        calls.append(paths)
        real_rm(tool, paths)

    monkeypatch.setattr(pinfold.envdir, "_rm", rm)
    outside = write(tmp_path / "outside" / "keep.txt", "precious")
    envs = Environments(tmp_path / "env")
    old = finished(envs, "20240101-000000000-aaaaaa")
    site = old / "lib" / "python3.11" / "site-packages"
    for n in range(100):  # past the split threshold, a few levels down
        write(site / f"dist{n}" / "__init__.py", "x = 1\n")
        write(site / f"dist{n}" / "sub" / "m.py", "y = 2\n")
    for odd in ("-rf", "--", "with space", "new\nline", "\udcff"):
        write(site / odd / "f.py", "")
    (site / "linked-folder").symlink_to(outside.parent, target_is_directory=True)
    (site / "linked-file").symlink_to(outside)
    newer = [finished(envs, f"2024010{i}-000000000-bbbbbb") for i in (2, 3)]
    envs.switch(newer[-1])
    done = envs.cleanup(keep=2)
    assert done.removed == (old,) and not os.path.lexists(old), done.warnings
    assert outside.read_text() == "precious"
    assert all(e.is_dir() for e in newer)
    if with_rm:  # two halves of site-packages' entries at once, then the rest of the tree
        assert len(calls) == 3 and len(calls[0]) + len(calls[1]) >= 100, calls
        assert sorted(calls[2]) == sorted(str(old / d) for d in ("bin", "lib"))
    else:
        assert calls == []


def test_an_environment_that_cannot_be_removed_is_named_and_stays_marked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever is left of a removal (a file neither rm nor shutil.rmtree could remove) is
    not reported as removed: cleanup names it, and it stays marked for the next cleanup."""
    import pinfold.envdir

    envs = Environments(tmp_path / "env")
    old = finished(envs, "20240101-000000000-aaaaaa")
    newer = [finished(envs, f"2024010{i}-000000000-bbbbbb") for i in (2, 3)]
    envs.switch(newer[-1])
    monkeypatch.setattr(pinfold.envdir, "_remove_trees", lambda trees: None)  # as if all failed
    done = envs.cleanup(keep=2)
    assert done.removed == ()
    assert f"{old} could not be removed: {old / 'bin'} is still there" in done.warnings
    assert is_marked(old) and not (old / STATE_FILE).exists()  # unfinished: the next cleanup
    monkeypatch.undo()
    assert envs.cleanup(keep=2).removed == (old,) and not os.path.lexists(old)


def signature(root: Path) -> dict[str, object]:
    """What a clone must make of a tree: folders, links (their targets, the tree's own path
    as <dst>), files by inode (the rewritten bin/ scripts and pyvenv.cfg by their bytes)."""
    out: dict[str, object] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if rel == MARKER:
                continue
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path).replace(str(root), "<dst>"))
            elif path.is_dir():
                out[rel] = "folder"
            elif rel.startswith("bin/") or rel == "pyvenv.cfg":
                out[rel] = ("bytes", path.read_text().replace(str(root), "<dst>"))
            else:
                out[rel] = ("file", path.stat().st_ino)
    return out


def test_a_builds_cleanup_retires_the_oldest_to_go_and_keeps_one_spare(tmp_path: Path) -> None:
    """A build's cleanup (spare=True) keeps the folders of the newest environment it lets go,
    as a spare that is no environment (no rollback lands on it, no no-op counts it as a
    leftover); an older spare goes; gc (spare=False) removes it, and a look-alike is left alone."""
    envs = Environments(tmp_path / "env")
    built = [finished(envs, f"2024010{i}-000000000-aaaaaa") for i in range(1, 6)]
    envs.switch(built[-1])
    done = envs.cleanup(keep=3, spare=True)
    spare = envs.versions / f".spare-{built[1].name}"
    assert done.removed == tuple(built[:2]) and done.warnings == ()
    assert envs.spares() == [spare] and is_spare(spare) and not os.path.lexists(built[1])
    assert not os.path.lexists(built[0])
    assert not (spare / STATE_FILE).exists() and (spare / "bin" / "tool").is_file()
    assert envs.finished() == built[2:] and not envs.has_leftovers()
    newer = finished(envs, "20240106-000000000-aaaaaa")
    envs.switch(newer)
    done = envs.cleanup(keep=3, spare=True)
    assert done.removed == (built[2],)
    assert envs.spares() == [envs.versions / f".spare-{built[2].name}"] and not spare.exists()
    done = envs.cleanup(keep=3)
    assert done.removed == () and done.warnings == () and envs.spares() == []
    # Its flag names another folder: not a spare of pinfold's (a copy, or a user's).
    fake = envs.versions / ".spare-copy"
    write(fake / SPARE, "pinfold spare folders .spare-other\n")
    done = envs.cleanup(keep=1, spare=True)
    assert fake.is_dir() and f"{fake} is not a build of pinfold's" in "\n".join(done.warnings)
    # An earlier pinfold's environment (no marker) is removed, never retired.
    legacy = finished(envs, "20240100-000000000-aaaaaa", marked=False)
    assert envs.cleanup(keep=1, spare=True).removed[0] == legacy and not legacy.exists()


def spare_and_source(envs: Environments) -> tuple[Path, Path]:
    """A current environment, and a spare made from an older one, disturbed in every way a
    clone has to undo: other bytes under a name, names the source lacks, a file where it has
    a folder and the other way round, a link into the old tree, pinfold's own files."""
    src = finished(envs, "20240105-000000000-aaaaaa")
    site = src / "lib" / "python3.11" / "site-packages"
    write(site / "pkg" / "__init__.py", "x = 1\n")
    write(site / "pkg" / "same.py", "same\n")
    write(site / "pkg" / "sub" / "m.py", "m = 1\n")
    write(site / "pkg" / "other" / "o.py", "o = 1\n")
    write(site / "was_folder.py", "a file where the spare has a folder\n")
    write(site / "was_file" / "f.py", "")
    write(site / "theirs" / "t.py", "")
    write(src / "share" / "doc.txt", "")
    (site / "inside").symlink_to(site / "pkg")
    (site / "outside").symlink_to("/usr/bin")
    (site / "same_link").symlink_to("pkg")  # the spare has the very same link: it stays
    (src / "lib64").symlink_to("lib")
    write(src / "pyvenv.cfg", f"home = /usr/bin\nprompt = {src}\n")
    write(src / "bin" / "tool", f"#!{src}/bin/python\n")
    old = finished(envs, "20240101-000000000-bbbbbb")
    osite = old / "lib" / "python3.11" / "site-packages"
    (osite / "pkg").mkdir(parents=True)
    os.link(site / "pkg" / "same.py", osite / "pkg" / "same.py")  # the very file: it stays
    write(osite / "pkg" / "__init__.py", "x = 0\n")
    write(osite / "pkg" / "stale.py", "")
    # A link out of the tree where the source has a folder: removed, never followed.
    outside = write(envs.versions.parent / "outside" / "keep.txt", "precious").parent
    (osite / "pkg" / "sub").symlink_to(outside, target_is_directory=True)
    # Folders as mkdir would not make them here (another umask; another owner): made anew.
    made = stat.S_IMODE(src.stat().st_mode)
    write(osite / "pkg" / "other" / "o.py", "o = 0\n")
    (osite / "pkg" / "other").chmod(made ^ 0o020)
    write(old / "share" / "doc.txt", "")
    (old / "share").chmod(made ^ 0o020)
    if os.geteuid() == 0:
        write(osite / "theirs" / "t.py", "")
        os.chown(osite / "theirs", 12345, -1)
    write(osite / "gone" / "mod.py", "")
    write(osite / "was_folder.py" / "x.py", "")
    write(osite / "was_file", "a file where the source has a folder\n")
    (osite / "inside").symlink_to(osite / "pkg")
    (osite / "outside").symlink_to("/usr/lib")
    (osite / "same_link").symlink_to("pkg")
    write(old / "lib64" / "x", "a folder where the source has a link")
    write(old / PYC_STAMPS / "x", "pinfold's own name at the top: never carried")
    write(old / "include" / "x.h", "")
    envs.switch(src)
    assert envs.cleanup(keep=1, spare=True).removed == (old,)
    return src, envs.spares()[0]


def test_a_clone_into_a_spares_folders_makes_what_a_clone_into_new_ones_makes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    envs = Environments(tmp_path / "env")
    src, spare = spare_and_source(envs)
    same = src / "lib" / "python3.11" / "site-packages" / "pkg" / "same.py"
    linked: list[str] = []
    real_link, real_symlink = os.link, os.symlink

    def link(source: str, target: str, **kwargs: bool) -> None:
        linked.append(os.path.basename(target))
        real_link(source, target, **kwargs)

    def symlink(source: str, target: str, **kwargs: bool) -> None:
        linked.append(os.path.basename(target))
        real_symlink(source, target, **kwargs)

    reused = envs.versions / "20240106-000000000-cccccc"
    envs.create(reused)
    kept_link = os.lstat(spare / "lib" / "python3.11" / "site-packages" / "same_link").st_ino
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "symlink", symlink)
    done = envs.clone(src, reused)
    monkeypatch.undo()
    # The identical link was kept as it was; the others were made anew.
    assert "same_link" not in linked and "outside" in linked and "inside" in linked
    assert os.lstat(reused / "lib" / "python3.11" / "site-packages" / "same_link").st_ino == kept_link
    assert done.folders >= 3 and not os.path.lexists(spare) and envs.spares() == []
    # The file the spare held already was kept, not linked again; the others were linked.
    assert "same.py" not in linked and "__init__.py" in linked and same.stat().st_nlink == 2
    assert (envs.versions.parent / "outside" / "keep.txt").read_text() == "precious"
    made = reused.stat()
    site = "lib/python3.11/site-packages"
    for folder in ("lib", "share", f"{site}/pkg", f"{site}/pkg/other", f"{site}/theirs"):
        info = (reused / folder).stat()
        assert (info.st_uid, info.st_gid, info.st_mode) == (made.st_uid, made.st_gid, made.st_mode), folder
    plain = envs.versions / "20240107-000000000-dddddd"
    envs.create(plain)
    fresh = envs.clone(src, plain)
    assert fresh.folders == 0 and fresh.files == done.files
    assert signature(reused) == signature(plain)
    assert not (reused / PYC_STAMPS).exists() and not (reused / "include").exists()
    assert is_marked(reused) and not (reused / STATE_FILE).exists()


def test_a_clone_whose_spare_cannot_be_made_to_match_starts_over_in_new_folders(tmp_path: Path) -> None:
    """A spare's file that cannot be removed (immutable: not even root may) ends the reuse:
    the new directory is set aside as an unfinished build's and cloned again into new folders,
    the same tree; the cleanup names what it cannot remove, and removes it once it can."""
    envs = Environments(tmp_path / "env")
    src, spare = spare_and_source(envs)
    stuck = spare / "lib" / "python3.11" / "site-packages" / "pkg" / "stale.py"
    if subprocess.run(["chattr", "+i", str(stuck)], capture_output=True).returncode != 0:
        pytest.skip(f"chattr +i is not possible here ({tmp_path}'s file system, or no chattr)")
    try:
        dst = envs.versions / "20240106-000000000-cccccc"
        envs.create(dst)
        done = envs.clone(src, dst)
        assert done.folders == 0 and envs.spares() == [] and is_marked(dst)
        plain = envs.versions / "20240107-000000000-dddddd"
        envs.create(plain)
        envs.clone(src, plain)
        assert signature(dst) == signature(plain)
        aside = [e for e in envs.versions.iterdir() if e not in (src, dst, plain) and e.name != ".lock"]
        assert len(aside) == 1 and is_marked(aside[0]) and not (aside[0] / STATE_FILE).exists()
        done2 = envs.cleanup(spare=True)
        assert f"{aside[0]} could not be removed" in "\n".join(done2.warnings) and is_marked(aside[0])
    finally:  # wherever the file is now (its folder moved along with the spare's)
        for path in envs.versions.rglob(stuck.name):
            subprocess.run(["chattr", "-i", str(path)], check=False)
    assert aside[0] in envs.cleanup(spare=True).removed and not os.path.lexists(aside[0])


def test_a_spare_that_cannot_be_made_to_match_is_set_aside_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first removal the reuse needs fails (as a folder that refuses it would): what
    the new directory holds goes into another one, marked as an unfinished build's first,
    and the clone starts over in new folders; the next cleanup removes the other one."""
    import pinfold.envdir

    envs = Environments(tmp_path / "env")
    src, _ = spare_and_source(envs)
    real_drop, calls = pinfold.envdir._drop, []

    def drop(entry: os.DirEntry[str]) -> None:
        calls.append(entry.path)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied", entry.path)
        real_drop(entry)

    monkeypatch.setattr(pinfold.envdir, "_drop", drop)
    dst = envs.versions / "20240106-000000000-cccccc"
    envs.create(dst)
    done = envs.clone(src, dst)
    monkeypatch.undo()
    assert done.folders == 0 and envs.spares() == [] and is_marked(dst) and len(calls) == 1
    plain = envs.versions / "20240107-000000000-dddddd"
    envs.create(plain)
    envs.clone(src, plain)
    assert signature(dst) == signature(plain)
    aside = [e for e in envs.versions.iterdir() if e not in (src, dst, plain) and e.name != ".lock"]
    assert len(aside) == 1 and is_marked(aside[0]) and (aside[0] / "lib").is_dir()
    assert aside[0] in envs.cleanup(spare=True).removed and not aside[0].exists()


def test_a_retire_cut_short_leaves_no_environment_and_nothing_finished_with_a_flag(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record goes before the flag is written and the folder renamed: stopped while the
    flag is written, the environment is a marked, unfinished folder (no rollback lands on
    it, nothing finished holds a flag), and the next cleanup removes it."""
    import pinfold.envdir
    from pinfold.paths import write_atomic as real_write

    envs = Environments(tmp_path / "env")
    built = [finished(envs, f"2024010{i}-000000000-aaaaaa") for i in range(1, 5)]
    envs.switch(built[-1])

    def write_atomic(path: Path, data: bytes, **kwargs: object) -> None:
        if path.name == SPARE:
            raise KeyboardInterrupt
        real_write(path, data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pinfold.envdir, "write_atomic", write_atomic)
    with pytest.raises(KeyboardInterrupt):
        envs.cleanup(keep=3, spare=True)
    monkeypatch.undo()
    assert envs.finished() == built[1:] and is_marked(built[0]) and envs.has_leftovers()
    assert envs.cleanup(keep=3, spare=True).removed == (built[0],) and not built[0].exists()
