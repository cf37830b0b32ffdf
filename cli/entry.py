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


def _importing(frame: Any) -> bool:
    """Whether ``frame`` runs inside an import. An exception raised there can reach a native extension's module
    initialisation through a callback into Python, and there it aborts the process (``terminate called after
    throwing an instance of 'pybind11::error_already_set'``, exit -6, seen once with Ctrl-C 0.8 s into
    ``discover`` while torch was being imported)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _deliver(signum: int, frame: Any) -> None:
    """Raise the interruption for ``signum`` now, or, inside an import, once it has finished: re-checked every
    50 ms (SIGALRM), so that Ctrl-C during start-up waits for the import it hit, never for the command."""
    if _importing(frame):
        signal.signal(signal.SIGALRM, lambda _s, f: _deliver(signum, f))
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        return
    if signum == signal.SIGTERM:
        try:
            from discovery.errors import Terminated
        except BaseException:  # still importing: the stand-in ends the program the same way
            raise _Terminated() from None
        raise Terminated()
    raise KeyboardInterrupt


def _on_sigint(signum: int, frame: Any) -> None:
    global _signalled
    _signalled = _signalled or signum
    _deliver(signum, frame)


class _Terminated(KeyboardInterrupt):
    """Stands in for ``discovery.errors.Terminated`` until that module is importable (see ``_on_sigterm``)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    global _signalled
    _signalled = _signalled or signum
    _deliver(signum, frame)


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
