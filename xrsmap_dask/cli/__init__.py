"""The ``xrsmap-dask`` command line.

Subcommands: ``composite``, ``annulus``, ``radial``, ``stats``, ``convert``, ``info``,
``run``, ``preview``, ``export``, ``verify``.  Every one that computes accepts the scheduler
options (``--scheduler threads|processes|pathos|local|slurm|pbs|ADDRESS|SCHEDULER_FILE``,
``--workers``, ...), shows
a progress bar on stderr (``--quiet`` for none) and exits with 0 (success), 1 (an error while
running, or a scan of a job failed) or 2 (bad usage or bad input: one clear line naming the
flag, file or frame, no traceback; ``--debug`` shows it).  SIGTERM (batch time limit,
``scancel``) stops like Ctrl-C: chunks already written are kept and a rerun resumes.

Layout: :mod:`.parser` (arguments; job settings come from the option table),
:mod:`.commands` (one short adapter per command), :mod:`.describe` (``info``).
"""
from __future__ import annotations

import re
import signal
import sys
import traceback
from typing import Sequence

from ..errors import InputError
from ..settings import relabel
from ..settings.options import MAPS
from ..pipeline import write_image
from .commands import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, execution_spec
from .parser import PROG, build_parser

__all__ = ["main", "build_parser", "execution_spec", "write_image", "EXIT_OK", "EXIT_ERROR",
           "EXIT_USAGE", "EXIT_INTERRUPTED", "PROG"]

#: the command line's names for fields that are not in the option table
ALIASES = {"inputs": "INPUT", "in_files": "INPUT", "output": "--output",
           "overwrite": "--overwrite", "rings": "--cen-y/--cen-x/--radius/--width",
           "stats": "--stat/--percentile", "threshold": "--threshold", "format": "--format",
           "n_workers": "--workers", "scheduler": "--scheduler"}


class Terminated(KeyboardInterrupt):
    """SIGTERM received: stop like Ctrl-C (clusters released, written chunks kept)."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by deploy scripts
    raise Terminated()


#: keyword arguments the library's messages name (``pass overwrite=True``), as flags
_KEYWORD_FLAGS = re.compile(r"\b(overwrite|allow_incomplete)=True\b")


def _flag_label(exc: InputError) -> InputError:
    """``exc`` with field names spelled as command-line flags (also the keyword arguments
    the library's reasons name: ``pass overwrite=True`` -> ``pass --overwrite``)."""
    aliases = dict(ALIASES)
    if exc.argument and exc.argument not in aliases and exc.argument.isidentifier():
        aliases.setdefault(exc.argument, "--" + exc.argument.replace("_", "-"))
    out = relabel(exc, MAPS, aliases=aliases)
    return out.replaced(reason=_KEYWORD_FLAGS.sub(
        lambda m: "--" + m.group(1).replace("_", "-"), out.reason))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 error, 2 bad usage/input, 130 interrupted)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{PROG}: error: {_flag_label(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"{PROG}: {what}; chunks already written are kept, rerun to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - one clear line, the traceback with --debug
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
