"""``python -m pinfold``."""

from .cli import main

raise SystemExit(main())
