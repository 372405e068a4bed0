"""Entry point of the ``actormatte`` console program: the argparse tree and the exit-code policy.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; that function adds
its parser and sets ``handler`` (``handler(args) -> int``) with ``parser.set_defaults``. Handlers
find a :class:`~actormatte.cli.protocol.Reporter` in ``args.reporter`` (its percentage spans
the stages a module sets with ``set_defaults(stages=...)``, all four by default) and the job's
:class:`~actormatte.progress.CancelToken` in ``args.cancel``. To add a sub-command, write the module
and append its name to :data:`SUBCOMMAND_MODULES`.

This module turns every outcome into the exit codes of ``docs/CLI.md``: typed ActorMatte errors
carry their own code, a CUDA out-of-memory error becomes 3, SIGINT/SIGTERM cancel the job after the
current frame and a second one at once (5, however close together they come), a full disk is
bad input (2, "no space left on ..."), and anything unexpected is reported as a bug (1) with the
traceback on stderr.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from types import FrameType

from actormatte import __version__
from actormatte.cli.protocol import Reporter
from actormatte.errors import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_FAILURE,
    EXIT_GPU_MEMORY,
    EXIT_OK,
    ActorMatteError,
    no_space_error,
)
from actormatte.progress import STAGES, CancelToken
from actormatte.threads import apply_threads

#: Sub-command modules under ``actormatte.cli``, in the order ``--help`` lists them. A module that
#: is not installed (yet) is left out of the tree.
SUBCOMMAND_MODULES = ("run", "propagate", "matte", "info", "weights_cmd", "farm_cmd", "eval_cmd",
                      "preview_cmd")

_CANCELLED = "cancelled; frames already written stay on disk"
_GPU_OOM_MESSAGE = ("out of GPU memory; retry with a smaller --size / --xmem-size, fewer actors, "
                    "or --device cpu")


def build_parser() -> argparse.ArgumentParser:
    """The full argument tree of ``actormatte``."""
    parser = argparse.ArgumentParser(
        prog="actormatte",
        description="Per-actor soft mattes from live-action plates (XMem + MaGGIe).")
    parser.add_argument("--version", action="version", version=f"actormatte {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log details on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        module_name = f"actormatte.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``actormatte`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Signal handlers are installed first (before the sub-commands' heavy imports), so a SIGINT or
    SIGTERM at any moment after the interpreter started ends with exit code 5, never with death
    by the signal.
    """
    cancel = CancelToken()
    signals = _SignalState(cancel, keep=argv is None)
    state = {"reporter": Reporter(bar=False)}
    try:
        try:
            code = _run(argv, cancel, state)
            signals.finishing = True
        except BaseException as exc:  # noqa: BLE001 - the last line of defence: report
            signals.finishing = True  # from here on signals are only counted
            code = _failure(state["reporter"], exc)
    except KeyboardInterrupt:  # a second signal in the instant before `finishing` was set
        code = _fail(state["reporter"], EXIT_CANCELLED, _CANCELLED)
    finally:
        signals.finishing = True
        signals.restore()
        state["reporter"].finish()
    if signals.count and code == EXIT_OK:
        code = _fail(state["reporter"], EXIT_CANCELLED, _CANCELLED)
    if signals.keep:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the console program with ``code`` at once, skipping the interpreter's finalisation.

    Finalisation with torch loaded takes a while, resets signal handlers and can surface a
    ``KeyboardInterrupt`` left inside a half-imported extension: a signal in that window turned
    exit code 5 into death by the signal. Everything of ours is already done: locks released,
    files renamed into place, events written; the streams are flushed here.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _run(argv: Sequence[str] | None, cancel: CancelToken, state: dict[str, Reporter]) -> int:
    """Parse ``argv`` and run the sub-command's handler; its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2 (message on stderr), --help 0
        code = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        if code != 0:
            state["reporter"].emit("error", code=code,
                                   message="bad command line (see the usage on stderr)")
        return code
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    reporter = Reporter(bar=None if getattr(args, "progress_bar", True) else False,
                        stages=getattr(args, "stages", STAGES))
    state["reporter"] = reporter
    args.reporter = reporter
    args.cancel = cancel
    if hasattr(args, "threads") and args.command != "farm":  # farm pins it in its tasks
        apply_threads(args.threads)
    cancel.check()  # a signal during start-up
    return int(args.handler(args) or 0)


def _failure(reporter: Reporter, exc: BaseException) -> int:
    """Report ``exc`` and return its exit code (docs/CLI.md)."""
    if isinstance(exc, ActorMatteError):
        return _fail(reporter, exc.exit_code, str(exc))
    if isinstance(exc, KeyboardInterrupt):
        return _fail(reporter, EXIT_CANCELLED, _CANCELLED)
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    if not isinstance(exc, Exception):
        raise exc
    if _is_cuda_oom(exc):
        return _fail(reporter, EXIT_GPU_MEMORY, _GPU_OOM_MESSAGE)
    if isinstance(exc, OSError):
        space = no_space_error(exc.filename and os.path.dirname(str(exc.filename)) or ".", exc)
        if space is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _fail(reporter, space.exit_code, f"{space} ({exc.filename or exc})")
    reporter.finish()
    traceback.print_exc(file=sys.stderr)
    message = (f"internal error (this is a bug in actormatte {__version__}; please report it "
               f"with the traceback printed on stderr): {type(exc).__name__}: {exc}")
    return _fail(reporter, EXIT_FAILURE, message)


def _fail(reporter: Reporter, code: int, message: str) -> int:
    reporter.emit("error", code=code, message=message)
    sys.stderr.write(f"actormatte: error: {message}\n")
    sys.stderr.flush()
    return code


def _is_cuda_oom(exc: BaseException) -> bool:
    if "torch" not in sys.modules:  # nothing ran on a GPU; do not import torch just to check
        return False
    from actormatte.device import is_out_of_memory  # torch, cuDNN, cuBLAS, spconv allocators

    return is_out_of_memory(exc)


class _SignalState:
    """SIGINT/SIGTERM handling of one :func:`main` call.

    The first signal asks the job to stop after the current frame (the cancel token); the second
    stops it at once by raising :class:`KeyboardInterrupt` (a ``BaseException``, so no
    ``except Exception`` in a library can swallow or wrap it; cleanup code still runs). Once the
    job is ending, further signals are only counted: they can no longer interrupt the error
    report, and the process never dies by the signal.
    """

    def __init__(self, cancel: CancelToken, keep: bool) -> None:
        self.cancel = cancel
        self.keep = keep
        self.count = 0
        self.finishing = False
        self._previous: dict[int, object] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread)
                pass

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.finishing:
            return
        if self.count == 1:
            self.cancel.cancel()
            return
        self.finishing = True
        raise KeyboardInterrupt("cancelled twice; stopped at once")

    def restore(self) -> None:
        """Put the previous handlers back (a later signal then acts as before :func:`main`).

        The console program (``main()`` without ``argv``) ignores both signals from now on
        instead: it exits right after, and the interpreter's finalisation (which resets Python
        handlers to the default action, but leaves ignored signals alone) takes a while with
        torch loaded; a signal then must not kill it.
        """
        self.finishing = True
        if self.keep:
            for signum in self._previous:
                signal.signal(signum, signal.SIG_IGN)
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
