"""What a develop tree holds, and the ``compile`` and ``installer`` settings, are build inputs.

Real builds (pip, uv, virtualenv, Twisted) of projects with an editable develop tree:
a plugin module gained by a tree, a changed ``pyproject.toml``, a develop tree's plugin
cache rewritten behind the environment's back, ``compile`` or ``installer`` switched in
env.yaml. Each must be seen by the no-op fast path, the plan (named in ``plan`` and
``status``) and the build; a file that is none of these changes nothing.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from pinfold import BuildResult, build, load_spec
from pinfold.cli import main
from pinfold.runner import Runner
from pinfold.uptodate import tree_state, up_to_date
from tests.artifacts import Artifact, copy_real, make_tree, make_wheel
from tests.conftest import installed, installer_calls, write

TWISTED = ("twisted", "attrs", "automat", "constantly", "hyperlink", "idna", "incremental",
           "packaging", "typing-extensions", "zope-interface")
HARMLESS = "from twisted.plugin import IPlugin  # a plugin module that provides nothing\n"
# Like txpkgupload 0.5: the reactor gets installed as a side effect of the import.
OFFENDER = "from twisted.internet import reactor  # noqa: the offence\n"


@dataclass(frozen=True)
class Wheelhouse:
    """The module's wheelhouse: setuptools for the editable builds, a wheel, Twisted's closure."""

    path: Path
    setuptools: Artifact
    plain: Artifact
    twisted: tuple[Artifact, ...]


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Wheelhouse:
    wh = tmp_path_factory.mktemp("wheelhouse")
    (setuptools,) = copy_real(wh, "setuptools")
    return Wheelhouse(path=wh, setuptools=setuptools, plain=make_wheel(wh, "plain-wheel", "1.0"),
                      twisted=tuple(copy_real(wh, *TWISTED)))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # Never the user's uv cache.
    monkeypatch.setenv("PINFOLD_UV_CACHE", str(tmp_path / "uv-cache"))


def project(root: Path, wh: Wheelhouse, runtime: Sequence[Artifact], *, tree: Path | None = None,
            extra: str = "") -> Path:
    """env.yaml with a runtime lock of ``runtime``, setuptools as the build lock, ``tree`` as develop."""
    write(root / "runtime.txt", "".join(f"{a.pin()}\n" for a in runtime))
    write(root / "build.txt", f"{wh.setuptools.pin()}\n")
    develop = f"develop: [{tree.relative_to(root)}]\n" if tree is not None else ""
    return write(root / "env.yaml", (
        "version: 1\n"
        "path: env\n"
        f"index:\n  find_links: [{wh.path}]\n"
        "requirements: runtime.txt\n"
        "build_requirements: build.txt\n"
    ) + develop + extra)


def cli(*args: str) -> tuple[int, str]:
    """Exit code and everything printed (results on stdout, messages on stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue() + err.getvalue()


def run_in(env: Path, code: str) -> str:
    done = subprocess.run([str(env / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          check=True, cwd="/")
    return done.stdout.strip()


def fresh(result: BuildResult) -> bool:
    """Whether the build created its environment from nothing (a full build, not a clone)."""
    create = next(s for s in result.stages if s.name == "create")
    return "hard-linked" not in create.detail


class _Stub:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        pass


class _Keys(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type[_Stub]:
        return _Stub  # Twisted is not importable here: every class read as a stub


def cache_keys(cache: Path) -> set[str]:
    """The module names a Twisted plugin cache lists."""
    with cache.open("rb") as fh:
        return set(_Keys(fh).load())


def site_pycs(env: Path) -> list[Path]:
    return list(next(env.glob("lib/python*/site-packages")).rglob("*.pyc"))


@pytest.mark.slow
def test_a_gained_plugin_module_is_built_and_the_hygiene_probe_names_it(tmp_path: Path,
                                                                        wheelhouse: Wheelhouse) -> None:
    tree = make_tree(tmp_path / "src", "app", "0.1", requires=["twisted"],
                     files={"app/__init__.py": "", "twisted/plugins/app_plugin.py": HARMLESS})
    spec_file = project(tmp_path, wheelhouse, wheelhouse.twisted, tree=tree)
    first = build(load_spec(spec_file))
    plugins = tree / "twisted" / "plugins"
    cache = plugins / "dropin.cache"
    assert cache_keys(cache) == {"app_plugin"}

    # Files that are neither metadata nor plugin modules change nothing.
    write(tree / "README.txt", "about the app\n")
    write(plugins / "README.txt", "about the plugins\n")
    assert up_to_date(spec_file, Runner()) is not None
    assert build(load_spec(spec_file)).up_to_date

    write(plugins / "new.py", OFFENDER)
    assert up_to_date(spec_file, Runner()) is None
    reason = "the develop tree src/app-0.1 gained twisted/plugins/new.py"
    code, out = cli("status", str(spec_file))
    assert code == 1 and reason in out and "needs an update" in out, out
    code, out = cli("plan", str(spec_file))
    assert code == 0 and reason in out, out

    code, err = cli("build", str(spec_file))
    assert code == 1, err
    assert "twisted.plugins.new: installs the reactor on import" in err, err
    assert "plugin-hygiene" in err
    # The cache was regenerated for the new module; the failed build was not switched in.
    assert cache_keys(cache) == {"app_plugin", "new"}
    assert (tmp_path / "env").resolve() == first.env_dir

    # Reverted: the module is gone, but the failed build rewrote the tree's (shared) cache.
    (plugins / "new.py").unlink()
    assert up_to_date(spec_file, Runner()) is None
    code, out = cli("status", str(spec_file))
    assert code == 1 and "the plugin cache src/app-0.1/twisted/plugins/dropin.cache" in out, out
    again = build(load_spec(spec_file))
    assert again.plan is not None and again.plan.mode == "update" and not fresh(again)
    assert cache_keys(cache) == {"app_plugin"}

    # A harmless plugin: an update with no pin change regenerates the cache, probes pass.
    write(plugins / "extra.py", HARMLESS)
    result = build(load_spec(spec_file))
    assert result.plan is not None and result.plan.mode == "update", result.plan
    assert result.plan.install == () and result.plan.remove == ()
    stages = {s.name: s for s in result.stages}
    assert "no distribution changed" in stages["install"].detail
    assert stages["plugins"].status == "ok" and stages["probes"].status == "ok"
    assert cache_keys(cache) == {"app_plugin", "extra"}
    assert build(load_spec(spec_file)).up_to_date
    assert up_to_date(spec_file, Runner()) is not None


@pytest.mark.slow
def test_check_fails_on_a_stale_develop_cache_and_status_names_it(tmp_path: Path,
                                                                  wheelhouse: Wheelhouse) -> None:
    tree = make_tree(tmp_path / "src", "app", "0.1", requires=["twisted"],
                     files={"app/__init__.py": "", "twisted/plugins/app_plugin.py": HARMLESS})
    spec_file = project(tmp_path, wheelhouse, wheelhouse.twisted, tree=tree)
    build(load_spec(spec_file))
    assert cli("check", str(spec_file))[0] == 0
    write(tree / "twisted" / "plugins" / "later.py", HARMLESS)
    code, err = cli("check", str(spec_file))
    assert code == 1, err
    assert "plugin-caches" in err and f"{tree / 'twisted' / 'plugins' / 'dropin.cache'}" in err, err
    assert "has no entry for twisted.plugins.later" in err, err
    code, out = cli("status", str(spec_file))
    assert code == 1 and "the develop tree src/app-0.1 gained twisted/plugins/later.py" in out, out


@pytest.mark.slow
def test_a_changed_pyproject_means_a_full_build(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    """A new dependency and a new entry point in a develop tree's pyproject.toml."""
    tree = make_tree(tmp_path / "src", "app", "0.1",
                     files={"app/__init__.py": "def main():\n    print('hello from app')\n"})
    spec_file = project(tmp_path, wheelhouse, [wheelhouse.plain], tree=tree)
    first = build(load_spec(spec_file))
    assert "plain-wheel" not in run_in(first.env_dir, "import importlib.metadata as m; "
                                                      "print(m.requires('app'))")
    pyproject = tree / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("dependencies = []", 'dependencies = ["plain-wheel"]')
                         + '\n[project.scripts]\napp-hello = "app:main"\n')
    assert up_to_date(spec_file, Runner()) is None
    reason = "the develop tree src/app-0.1 changed pyproject.toml"
    code, out = cli("status", str(spec_file))
    assert code == 1 and reason in out and "needs a full build" in out, out
    result = build(load_spec(spec_file))
    assert result.plan is not None and result.plan.mode == "full" and fresh(result), result.plan
    assert reason in result.plan.reasons
    env = tmp_path / "env"
    assert "plain-wheel" in run_in(env, "import importlib.metadata as m; print(m.requires('app'))")
    done = subprocess.run([str(env / "bin" / "app-hello")], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "hello from app"
    assert build(load_spec(spec_file)).up_to_date


@pytest.mark.slow
def test_switching_compile_is_a_full_build(tmp_path: Path, wheelhouse: Wheelhouse) -> None:
    spec_file = project(tmp_path, wheelhouse, [wheelhouse.plain], extra="compile: true\n")
    env = tmp_path / "env"
    build(load_spec(spec_file))
    assert site_pycs(env)
    for old, new in (("true", "false"), ("false", "true")):
        spec_file.write_text(spec_file.read_text().replace(f"compile: {old}", f"compile: {new}"))
        code, out = cli("status", str(spec_file))
        assert code == 1 and f"compile changed: {old} -> {new}" in out and "needs a full build" in out, out
        result = build(load_spec(spec_file))
        assert result.plan is not None and result.plan.mode == "full" and fresh(result), result.plan
        compiled = {s.name: s.status for s in result.stages}["compile"]
        if new == "false":
            assert compiled == "skipped" and site_pycs(env) == []
        else:
            assert compiled == "ok" and site_pycs(env)
            tag = sys.implementation.cache_tag
            assert [p.name for p in site_pycs(env) if p.parent.parent.name == "plain_wheel"] == [
                f"__init__.{tag}.pyc"]


@pytest.mark.slow
def test_switching_the_installer_rebuilds_with_the_other_one(tmp_path: Path,
                                                             wheelhouse: Wheelhouse) -> None:
    tree = make_tree(tmp_path / "src", "app", "0.1", files={"app/__init__.py": ""})
    spec_file = project(tmp_path, wheelhouse, [wheelhouse.plain], tree=tree, extra="installer: pip\n")
    env = tmp_path / "env"
    build(load_spec(spec_file))

    def installers() -> set[str]:
        site = next(env.glob("lib/python*/site-packages"))
        return {(d / "INSTALLER").read_text().strip() for d in site.glob("*.dist-info")}

    assert installers() == {"pip"}
    for old, new in (("pip", "uv"), ("uv", "pip")):
        spec_file.write_text(spec_file.read_text().replace(f"installer: {old}", f"installer: {new}"))
        code, out = cli("plan", str(spec_file))
        assert code == 0 and f"installer changed: {old} -> {new}" in out and "needs a full build" in out, out
        runner = Runner()
        result = build(load_spec(spec_file), runner=runner)
        assert result.plan is not None and result.plan.mode == "full" and fresh(result), result.plan
        installs = [argv for argv in installer_calls(runner) if "install" in argv]
        by = {"uv" if any(Path(a).name == "uv" for a in argv[:2]) else "pip" for argv in installs}
        assert by == {new}, installs
        assert installers() == {new}
        assert set(installed(env)) == {"plain-wheel", "app"}


def test_tree_state_holds_metadata_and_plugin_modules_only(tmp_path: Path) -> None:
    """What is watched in a develop tree: cheap, and blind to files that change no build."""
    tree = tmp_path / "tree"
    for name in ("pyproject.toml", "setup.cfg", "README.txt", "twisted/plugins/a.py",
                 "twisted/plugins/README.txt", "twisted/plugins/sub/__init__.py",
                 "twisted/plugins/__pycache__/a.cpython-311.pyc", "twisted/plugins/dropin.cache",
                 "myapp/__init__.py", "myapp/plugins/h.py", "myapp/other/x.py", "docs/conf.py",
                 "src/twisted/plugins/b.py"):
        write(tree / name, "")
    write(tree / "myapp" / "plugins" / "__init__.py",
          "from twisted.plugin import pluginPackagePaths\n__path__.extend(pluginPackagePaths(__name__))\n")
    state = tree_state(tree)
    assert sorted(state.metadata) == ["pyproject.toml", "setup.cfg"]
    assert sorted(state.plugins) == [
        "myapp/plugins/", "myapp/plugins/__init__.py", "myapp/plugins/h.py",
        "src/twisted/plugins/", "src/twisted/plugins/b.py",
        "twisted/plugins/", "twisted/plugins/a.py", "twisted/plugins/sub"]
    # Listed in final.plugin_caches.packages: its folder is watched too.
    assert "myapp/other/x.py" in tree_state(tree, ["myapp.other"]).plugins

    for unrelated in ("README.txt", "twisted/plugins/README.txt", "twisted/plugins/dropin.cache",
                      "docs/conf.py"):
        write(tree / unrelated, "changed\n")
    assert tree_state(tree) == state
    write(tree / "twisted" / "plugins" / "a.py", "x = 1\n")
    assert tree_state(tree).plugins["twisted/plugins/a.py"] != state.plugins["twisted/plugins/a.py"]
    write(tree / "setup.cfg", "[metadata]\n")
    assert tree_state(tree).metadata["setup.cfg"] != state.metadata["setup.cfg"]
