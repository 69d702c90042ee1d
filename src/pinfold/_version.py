"""pinfold's version, in a module of its own: every layer may import it, ``pinfold`` re-exports it."""

__version__ = "0.1.0"
