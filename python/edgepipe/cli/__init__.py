"""The ``edgepipe`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``
(adds its parser and sets ``func``, which takes the parsed namespace and
returns the exit status). :data:`edgepipe.cli.main.COMMANDS` lists the
hooks in the order ``edgepipe --help`` shows them; a feature package adds
its ``cli.register`` there.

Errors print one line starting ``error:`` on stderr. Exit status 2 means bad
input (a bad model, bad arrays, bad arguments), 1 any other failure.
"""

from __future__ import annotations

from .common import UsageError
from .main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
