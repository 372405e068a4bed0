"""Entry point of the ``actormatte`` console program: the argparse tree and the exit-code policy.

Each sub-command lives in its own module exposing ``add_parser(subparsers)``; that function adds
its parser and sets ``handler`` (``handler(args) -> int``) with ``parser.set_defaults``. Handlers
find a :class:`~actormatte.cli.protocol.Reporter` in ``args.reporter`` (its percentage spans
the stages a module sets with ``set_defaults(stages=...)``, all four by default) and the job's
:class:`~actormatte.progress.CancelToken` in ``args.cancel``. To add a sub-command, write the module
and append its name to :data:`SUBCOMMAND_MODULES`.

This module turns every outcome into the exit codes of ``docs/CLI.md``: typed ActorMatte errors
carry their own code, a CUDA out-of-memory error becomes 3, SIGINT/SIGTERM cancel the job after the
current frame (5), and anything unexpected is reported as a bug (1) with the traceback on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from types import FrameType

from actormatte import __version__
from actormatte.cli.protocol import Reporter
from actormatte.errors import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_FAILURE,
    EXIT_GPU_MEMORY,
    ActorMatteError,
    CancelledError,
)
from actormatte.progress import STAGES, CancelToken

#: Sub-command modules under ``actormatte.cli``, in the order ``--help`` lists them. A module that
#: is not installed (yet) is left out of the tree.
SUBCOMMAND_MODULES = ("run", "propagate", "matte", "info", "weights_cmd", "farm_cmd", "eval_cmd",
                      "preview_cmd")

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
    """Run ``actormatte`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2 (message on stderr), --help 0
        code = exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
        if code != 0:
            Reporter(bar=False).emit("error", code=code,
                                     message="bad command line (see the usage on stderr)")
        return code
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    reporter = Reporter(bar=None if getattr(args, "progress_bar", True) else False,
                        stages=getattr(args, "stages", STAGES))
    cancel = CancelToken()
    args.reporter = reporter
    args.cancel = cancel
    restore = _install_signal_handlers(cancel)
    try:
        return int(args.handler(args) or 0)
    except ActorMatteError as exc:
        return _fail(reporter, exc.exit_code, str(exc))
    except KeyboardInterrupt:
        return _fail(reporter, EXIT_CANCELLED, "cancelled; frames already written stay on disk")
    except Exception as exc:  # noqa: BLE001 - the last line of defence: report, never crash
        if _is_cuda_oom(exc):
            return _fail(reporter, EXIT_GPU_MEMORY, _GPU_OOM_MESSAGE)
        reporter.finish()
        traceback.print_exc(file=sys.stderr)
        message = (f"internal error (this is a bug in actormatte {__version__}; please report it "
                   f"with the traceback printed on stderr): {type(exc).__name__}: {exc}")
        return _fail(reporter, EXIT_FAILURE, message)
    finally:
        restore()
        reporter.finish()


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


def _install_signal_handlers(cancel: CancelToken) -> Callable[[], None]:
    """SIGINT/SIGTERM ask the job to stop after the current frame; a second one stops it now."""
    previous: dict[int, object] = {}

    def handle(signum: int, frame: FrameType | None) -> None:
        if cancel.cancelled:
            raise CancelledError("cancelled twice; stopped at once (finished frames stay on disk)")
        cancel.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, handle)
        except ValueError:  # not the main thread (e.g. called from a test thread)
            pass

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    return restore


if __name__ == "__main__":
    sys.exit(main())
