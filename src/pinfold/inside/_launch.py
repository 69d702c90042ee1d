"""Start an inside script: ``python -I -B _launch.py SCRIPT RESULT.json ARGS...``.

Loads ``_common.py`` once, by file path, as the module ``_pinfold_common``, then runs
SCRIPT as ``__main__``. Nothing is added to ``sys.path``, which is where Twisted looks
for plugin folders; the scripts take ``common`` from ``sys.modules``.
"""

import importlib.util
import os
import runpy
import sys


def _main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("_pinfold_common", os.path.join(here, "_common.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_pinfold_common"] = module
    spec.loader.exec_module(module)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    _main()
