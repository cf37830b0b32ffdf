"""The ``circuits`` console script's entry point: signals first, then everything else.

This module imports only the standard library before installing its handlers, so that Ctrl-C at any moment, even
while the command's modules are still being imported, ends in one line (``interrupted``) and exit status 130, and
SIGTERM (what Slurm, Ray and Kubernetes send on pre-emption) in exit status 143, a running discovery recorded as
``interrupted`` either way (``discovery.pipeline``).
"""

from __future__ import annotations

import signal
import sys
from typing import Any, NoReturn

_signalled = 0  # the first Ctrl-C's or SIGTERM's number: whatever error follows is reported as that signal


def signalled() -> int:
    """``signal.SIGINT`` or ``signal.SIGTERM`` once one has arrived, else 0. A library interrupted mid-import can
    swallow the KeyboardInterrupt and fail later with another error (a RecursionError was seen once, Ctrl-C 0.8 s
    into ``discover``); that error is then reported as the interruption it comes from (``cli.main``), not as an
    internal error."""
    return _signalled


def _on_sigint(signum: int, _frame: Any) -> None:
    global _signalled
    _signalled = _signalled or signum
    raise KeyboardInterrupt


class _Terminated(KeyboardInterrupt):
    """Stands in for ``discovery.errors.Terminated`` until that module is importable (see ``_on_sigterm``)."""


def _on_sigterm(signum: int, _frame: Any) -> None:
    global _signalled
    _signalled = _signalled or signum
    try:
        from discovery.errors import Terminated
    except BaseException:  # still importing: the stand-in ends the program the same way
        raise _Terminated() from None
    raise Terminated()


def _interrupted(err: KeyboardInterrupt) -> NoReturn:
    terminated = type(err).__name__ in ("Terminated", "_Terminated")
    try:
        sys.stderr.write("terminated\n" if terminated else "interrupted\n")
        sys.stderr.flush()
    except BaseException:
        pass
    raise SystemExit(143 if terminated else 130)


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (nohup, &)
        signal.signal(signal.SIGINT, _on_sigint)
    try:
        from cli.main import cli

        cli(prog_name="circuits")
    except KeyboardInterrupt as err:
        _interrupted(err)


if __name__ == "__main__":
    main()
