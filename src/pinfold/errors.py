"""The one error hierarchy: each error's text is what the user reads.

The CLI turns an error into one line per problem and an exit code; the library
never prints or exits.
"""

from __future__ import annotations

from collections.abc import Sequence

# `typing`'s own flag, without importing `typing` (~3 ms): the modules a no-op `pinfold
# build` loads do without it (see pinfold.uptodate); mypy reads this name as typing's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .results import ProbeResult

__all__ = [
    "BuildError",
    "CommandError",
    "PinfoldError",
    "PreflightError",
    "ProbeError",
    "Problem",
    "SpecError",
    "interpreter_failed",
]

#: Exit codes, shared by every command; which error gets which is decided in one place,
#: the CLI's table (:data:`pinfold.cli.EXIT_CODES`).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


# A plain class, not a dataclass or a NamedTuple, as are the few other types every command
# imports: the no-op `pinfold build` must not pay for importing `dataclasses` (~10 ms) or
# `typing`, and generating each class's methods (~1 ms a class).
class Problem:
    """One thing wrong, with where it is (``env.yaml:3:5``, a lock line, a file)."""

    __slots__ = ("message", "where")

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Problem):
            return NotImplemented
        return (self.where, self.message) == (other.where, other.message)

    def __hash__(self) -> int:
        return hash((self.where, self.message))

    def __repr__(self) -> str:
        return f"Problem(where={self.where!r}, message={self.message!r})"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class PinfoldError(Exception):
    """Base of every error pinfold raises on purpose.

    ``problems`` holds every finding, so that all of them are reported together.
    """

    #: A short hint on what to do next, shown after the problems.
    tip: str = ""

    def __init__(self, summary: str, problems: Sequence[Problem] = (), *, tip: str = "") -> None:
        super().__init__(summary)
        self.summary = summary
        self.problems = tuple(problems)
        if tip:
            self.tip = tip

    def __str__(self) -> str:
        lines = [self.summary, *(f"  {p}" for p in self.problems)]
        return "\n".join(lines)


class SpecError(PinfoldError):
    """env.yaml or a lock file is invalid: bad input, exit code 2."""


class PreflightError(PinfoldError):
    """The index cannot serve the locks (missing or tampered artifacts)."""


class BuildError(PinfoldError):
    """A stage failed while building."""


class ProbeError(BuildError):
    """One or more probes failed; keeps every probe's result for the report (JSON, JUnit)."""

    def __init__(self, summary: str, problems: Sequence[Problem] = (), *,
                 results: Sequence[ProbeResult] = (), tip: str = "") -> None:
        super().__init__(summary, problems, tip=tip)
        self.results = tuple(results)


class CommandError(BuildError):
    """A subprocess failed; keeps the command and the tail of its output."""

    def __init__(self, summary: str, *, argv: Sequence[str], returncode: int, output: str) -> None:
        tail = output.strip().splitlines()[-25:]
        problems = [Problem("command", " ".join(argv)), Problem("exit code", str(returncode))]
        problems += [Problem("", f"| {line}") for line in tail]
        super().__init__(summary, problems, tip="run with -v to see the whole output")
        self.argv = tuple(argv)
        self.returncode = returncode
        self.output = output


def interpreter_failed(python: str, problems: Sequence[Problem] = ()) -> BuildError:
    """The one error for a target interpreter that cannot run (or answers nonsense)."""
    return BuildError(f"cannot run the target interpreter {python}", problems,
                      tip="set `python` in env.yaml to a working Python 3 interpreter")
