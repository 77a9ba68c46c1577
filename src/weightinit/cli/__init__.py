"""Command line: ``weightinit describe | generate | warmup | simulate | theory | figures |
stream | sweep``.

argparse -> public API. ``simulate``, ``theory`` and ``figures`` draw with
:mod:`weightinit.plotting` (matplotlib, the optional "plot" extra), imported only when a figure is
asked for. Every output file is written to a temporary file beside it and renamed into place once
complete, so an error, Ctrl-C or SIGTERM never leaves a partial file (only SIGKILL or a crash
can leave a ``.weightinit-*.part`` temporary file, never a partial output). ``generate --zarr
PATH`` writes into ``PATH.part`` and keeps it when interrupted, so that the same command resumes.
``sweep`` runs on dask.distributed and ``generate --zarr`` writes with zarr (the "dask" extra).

Layout: one module per command, and :mod:`weightinit.cli.common` for what they share (argument
types such as ``positive_int``, the ``--progress`` option and its tqdm ``progress_bar``,
:class:`~weightinit.cli.common.Outputs` for atomic output files, ``import_plotting``). The figure recipes of ``weightinit figures`` live in
:mod:`weightinit.doc_figures`, one module per doc.

Adding a command ``NAME``: write ``cli/NAME.py`` with

- ``add_parser(sub)``: ``p = sub.add_parser("NAME", help=...)``, its arguments, and
  ``p.set_defaults(run=run)``;
- ``run(args, stdout) -> int``: the command; it raises ValueError/TypeError for bad input (exit
  status 2) and :class:`~weightinit.cli.common.MissingDependencyError` for a missing optional
  package (exit status 1), and writes files through :class:`~weightinit.cli.common.Outputs`;

then add the line ``"NAME",`` to ``COMMANDS`` below (its place there is its place in
``weightinit --help``). Shared argument types and output helpers go in ``common.py``, never in a
command module another command imports.
"""

import argparse
import importlib
import signal
import sys
import threading

from .. import __version__
from .common import MissingDependencyError

#: The command modules, one a line, in the order of ``weightinit --help``.
COMMANDS = (
    "describe",
    "generate",
    "warmup",
    "simulate",
    "theory",
    "spectrum",
    "figures",
    "stream",
    "sweep",
)


def __getattr__(name):
    """``weightinit.cli.FIGURES`` and ``FIGURE_SIZES``, from :mod:`weightinit.doc_figures`."""
    if name in ("FIGURES", "FIGURE_SIZES"):
        from .. import doc_figures

        return getattr(doc_figures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _parser():
    p = argparse.ArgumentParser(
        prog="weightinit", description="Exact, reproducible, fast weight initialisation.")
    p.add_argument("--version", action="version", version=f"weightinit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(sub)
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up removes every temporary file."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _handle_sigterm():
    """Turn SIGTERM into :class:`_Terminated` while a command runs; return a function that undoes it.

    Only from the main thread and only if SIGTERM still has its default action (an embedding
    program's own handler is left alone).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        return lambda: None
    signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _interrupted(command, e):
    what, code = ("terminated", 143) if isinstance(e, _Terminated) else ("interrupted", 130)
    print(f"\nweightinit {command}: {what}; no output written", file=sys.stderr)
    return code


def main(argv=None, stdout=None):
    """Entry point; returns the exit status (2 for bad arguments, 1 when matplotlib is missing
    for a figure, 130 on Ctrl-C, 143 on SIGTERM). Interrupted or terminated, a command leaves no
    output file and no temporary file behind (``generate --zarr`` keeps ``PATH.part`` to
    resume)."""
    stdout = stdout or sys.stdout
    args = _parser().parse_args(argv)
    restore = _handle_sigterm()
    try:
        return args.run(args, stdout)
    except (ValueError, TypeError) as e:
        print(f"weightinit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MissingDependencyError as e:
        print(f"weightinit {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. an output folder that does not exist or is not writable
        print(f"weightinit {args.command}: error: {e.strerror or e}: {e.filename or ''}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return _interrupted(args.command, e)
    except RuntimeError as e:
        # Python wraps an interrupt that lands in a class body's __set_name__ (during a lazy
        # import) in a RuntimeError; it is still the user's Ctrl-C or SIGTERM
        if isinstance(e.__cause__, KeyboardInterrupt):
            return _interrupted(args.command, e.__cause__)
        raise
    finally:
        restore()
