"""Where things are inside an environment's folder, as pinfold (the host side) finds them.

Standard library only and cheap: the no-op fast path (:mod:`pinfold.uptodate`, through
:func:`pinfold.envdir.damage`) uses it. The inside scripts do not: they ask their own
interpreter (``sys.path``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["site_packages"]


def site_packages(env_dir: Path) -> list[Path]:
    """The environment's ``site-packages`` folders: ``lib/python*/`` ones first, then ``lib64/``.

    Each folder once: a ``lib64`` that is a symlink to ``lib`` (as ``venv`` makes it on
    64-bit Linux) or that holds a link to the same folder adds nothing. Paths are returned
    as found under ``env_dir``, not resolved.
    """
    out: list[Path] = []
    seen: set[Path] = set()
    for lib in ("lib", "lib64"):
        for site in sorted(env_dir.glob(f"{lib}/python*/site-packages")):
            real = site.resolve()
            if site.is_dir() and real not in seen:
                seen.add(real)
                out.append(site)
    return out
