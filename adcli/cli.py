"""The command line: a click group whose commands live in adcli/commands/, loaded on demand.

This is the one place where errors become exit statuses (:meth:`AdcliGroup.main`): an
:class:`AdcliError` or a usage error prints one ``Error: ...`` line on stderr and exits 2, an
output that cannot be written exits 1, a broken pipe exits 141 quietly and Ctrl-C exits 130,
for every command and output format. Commands stay thin: parse options, call the core, hand the
result to a renderer.
"""

from __future__ import annotations

import os
import signal
import sys

from . import _interrupted_early, _is_program  # noqa: E402 - the Ctrl-C handler, set first

if _is_program():
    # Before the imports below (click, and the command's modules later): a PYTHONWARNINGS=error
    # in the user's environment cannot turn a library's warning into a traceback.
    import warnings

    warnings.simplefilter("ignore")

import errno  # noqa: E402 - after the handler above, on purpose
import importlib  # noqa: E402
import io  # noqa: E402

import click  # noqa: E402

from . import __version__  # noqa: E402
from .errors import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    AdcliError,
    Terminated,
    clip_words,
    escape_control,
)

#: command name -> "module:function"; each command module is imported only when run.
COMMANDS: dict[str, str] = {
    "grad": "adcli.commands.grad:grad",
    "eval": "adcli.commands.grad:eval_",
    "compare-modes": "adcli.commands.compare:compare_modes_cmd",
    "minimize": "adcli.commands.minimize:minimize",
    "hessian": "adcli.commands.hessian:hessian",
    "diff": "adcli.commands.diff:diff",
    "explain": "adcli.commands.explain:explain",
    "graph": "adcli.commands.graph:graph",
    "fit": "adcli.commands.fit:fit",
    "propagate": "adcli.commands.propagate:propagate",
}

#: The first line of each command's help, for ``adcli --help``: listing the commands then
#: imports none of them (nor numpy, nor rich). A test keeps these equal to the docstrings.
SUMMARIES: dict[str, str] = {
    "compare-modes": "Gradient of EXPR by forward mode, reverse mode and finite differences.",
    "diff": "The derivative of EXPR as an expression you can read, evaluate or differentiate "
            "again.",
    "eval": "Value of EXPR at a point.",
    "explain": "Both sweeps of EXPR at a point, step by step: the chain rule at work.",
    "fit": "Fit the parameters of \"LHS ~ MODEL\" to a data file by least squares.",
    "grad": "Value and gradient of EXPR at a point, by reverse mode.",
    "graph": "The tape of EXPR as a graph (DOT or SVG), with values and gradients at a point.",
    "hessian": "The exact Hessian matrix of EXPR at a point, with its eigenvalues.",
    "minimize": "Minimise EXPR, or fit its parameters to the rows of a data file.",
    "propagate": "Propagate the uncertainty of the inputs of EXPR into its value (GUM).",
}



class CliError(click.ClickException):
    """A one-line ``Error: ...`` on stderr and exit status 2 (no usage block)."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Stop(Exception):  # noqa: N818 - not an error: carries an outcome past click's handlers
    """Raised from ``invoke`` so that click's own handlers (which print "Aborted!" and exit 1
    for Ctrl-C and a broken pipe) never see these cases."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class AdcliGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in COMMANDS and not args[0].startswith("-"):
            import difflib  # a misspelt command gets the did-you-mean its options get

            close = difflib.get_close_matches(args[0], list(COMMANDS), n=1)
            if close:
                ctx.fail(f"No such command '{args[0]}'. Did you mean '{close[0]}'?")
        name, command, rest = super().resolve_command(ctx, args)
        if command is None:
            return name, command, rest
        return name, command, _expr_after_dashes(command, rest, ctx.help_option_names)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AdcliError as err:
            raise CliError(err.render(), err.exit_code) from None
        except RecursionError:
            raise CliError("input nests too deeply for this operation") from None
        except MemoryError:
            raise CliError("out of memory: the input is too large") from None
        except (KeyboardInterrupt, Terminated, OSError) as err:
            raise _Stop(err) from None

    def main(self, args: list[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra) -> int:
        """click's main, with every outcome mapped to one status here (see the module doc)."""
        code = self._run(args, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args: list[str] | None, prog_name: str | None, complete_var: str | None,
             **extra) -> int:
        from .output import numbers

        # --digits is a setting of one run: a command without the option (graph) must not
        # print with what an earlier run in the same process (the API, tests) asked for
        numbers.set_digits(numbers.DEFAULT_DIGITS)
        try:
            try:
                rv = super().main(args, prog_name, complete_var, standalone_mode=False,
                                  **extra)
                code = rv if isinstance(rv, int) else EXIT_OK
                sys.stdout.flush()  # buffered output fails here, not at interpreter exit
                return code
            except _Stop as stop:
                raise stop.cause from None
        except click.UsageError as err:
            hint = f"\nTry '{err.ctx.command_path} --help' for help." if err.ctx else ""
            message = escape_control(clip_words(err.format_message()))
            click.echo(f"Error: {message}{escape_control(hint)}", err=True)
            return EXIT_BAD_INPUT
        except click.ClickException as err:
            click.echo(f"Error: {escape_control(err.format_message())}", err=True)
            return err.exit_code
        except (KeyboardInterrupt, click.Abort):
            _discard_stdout()
            click.echo("Error: interrupted", err=True)
            return EXIT_INTERRUPTED
        except Terminated:
            _discard_stdout()
            click.echo("Error: terminated", err=True)
            return EXIT_TERMINATED
        except OSError as err:
            _discard_stdout()
            if err.errno == errno.EPIPE:
                return EXIT_BROKEN_PIPE
            reason = err.strerror or str(err)
            if err.filename is not None:
                reason = f"'{err.filename}': {reason}"
            click.echo(f"Error: cannot write output: {escape_control(reason)}", err=True)
            return EXIT_FAILED


def _expr_after_dashes(command: click.Command, args: list[str],
                       help_names: list[str]) -> list[str]:
    """``adcli eval "-x^2" --at x=1``: an EXPR that starts with '-' is not an option. An
    argument like that which no option of the command claims (nor takes as its value) moves
    behind ``--``, where click reads it as EXPR, as ``adcli eval --at x=1 -- "-x^2"`` would."""
    short, takes_value = {n for n in help_names if not n.startswith("--")}, set()
    for param in command.params:
        if isinstance(param, click.Option):
            names = [*param.opts, *param.secondary_opts]
            short.update(n for n in names if not n.startswith("--"))
            if not param.is_flag and not param.count:
                takes_value.update(names)
    kept: list[str] = []
    moved: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            kept.extend(args[i:])
            break
        if arg in takes_value and i + 1 < len(args):
            kept.extend(args[i:i + 2])
            i += 2
            continue
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1 \
                and arg[:2] not in short:
            moved.append(arg)
        else:
            kept.append(arg)
        i += 1
    if not moved:
        return args
    if "--" in kept:
        return args  # already explicit: leave it to click
    return [*kept, "--", *moved]


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so output still buffered cannot fail again (and print
    "Exception ignored") when the interpreter flushes it at exit."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (CliRunner)
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass


@click.group(cls=AdcliGroup, context_settings={"help_option_names": ["-h", "--help"],
                                               "max_content_width": 100})
@click.version_option(version=__version__, prog_name="adcli")  # no importlib.metadata scan
def cli() -> None:
    """Differentiate and optimise mathematical expressions.

    Write an expression such as "(w0 + w1*x - y)^2", or a program of let-bindings
    ("a = x^2; b = x*y; a + b"); pass it inline, as @FILE, or - for stdin.

    \b
    Exit status: 0 success, 1 the job ran but failed (e.g. an optimiser diverged, or
    the output could not be written), 2 bad input (syntax, unknown name, missing value,
    unreadable file, bad option), 130 interrupted, 141 the output pipe was closed,
    143 terminated while writing a file (the old file is kept).
    """


class _WriteAll(io.BufferedWriter):
    """CPython's BufferedWriter may return a short count for a large write when the pipe's
    reader goes away, and TextIOWrapper ignores it: the output would be cut silently, exit 0.
    Writing the rest makes the broken pipe (or a full disk) an error we can report."""

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += super().write(view[done:])
        return len(view)


def _checked_stdout() -> None:
    """Put stdout on a :class:`_WriteAll` buffer, keeping its encoding and line buffering."""
    out = sys.stdout
    try:
        fd = out.fileno()
        raw = io.FileIO(fd, "w", closefd=False)
    except (AttributeError, OSError, ValueError):
        return
    out.flush()
    sys.stdout = io.TextIOWrapper(_WriteAll(raw), encoding=out.encoding, errors=out.errors,
                                  line_buffering=out.line_buffering)


class _ClosedStream(io.TextIOBase):
    """Standard output when the program started with it closed (``adcli ... >&-``): Python
    leaves ``sys.stdout`` None. Writing is an output error (exit status 1) like any other;
    a command that writes nothing there (``-o FILE``) is not disturbed."""

    encoding = "utf-8"
    errors = "strict"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "standard output is closed")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "standard output is closed")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        if signal.getsignal(signal.SIGINT) is _interrupted_early:
            # from here on Ctrl-C is a KeyboardInterrupt, which every command handles
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if sys.stdout is None:
            sys.stdout = _ClosedStream()
        _checked_stdout()
        code = cli.main(args=argv, prog_name="adcli", standalone_mode=False)
    except KeyboardInterrupt:  # between click's handlers and here
        _discard_stdout()
        click.echo("Error: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except Terminated:
        _discard_stdout()
        click.echo("Error: terminated", err=True)
        code = EXIT_TERMINATED
    sys.exit(code)
