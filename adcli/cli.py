"""The command line: a click group whose commands live in adcli/commands/, loaded on demand.

This is the one place where core errors become exit statuses: an :class:`AdcliError` prints
``Error: ...`` on stderr and exits 2. Commands stay thin: parse options, call the core, hand the
result to a renderer.
"""

from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import AdcliError

#: command name -> "module:function"; each command module is imported only when run.
COMMANDS: dict[str, str] = {
    "grad": "adcli.commands.grad:grad",
    "eval": "adcli.commands.grad:eval_",
    "compare-modes": "adcli.commands.compare:compare_modes_cmd",
    "minimize": "adcli.commands.minimize:minimize",
    "hessian": "adcli.commands.diff:hessian",
    "diff": "adcli.commands.diff:diff",
    "graph": "adcli.commands.diff:graph",
    "fit": "adcli.commands.fit:fit",
}

#: The first line of each command's help, for ``adcli --help``: listing the commands then
#: imports none of them (nor numpy, nor rich). A test keeps these equal to the docstrings.
SUMMARIES: dict[str, str] = {
    "compare-modes": "Gradient of EXPR by forward mode, reverse mode and finite differences.",
    "diff": "The derivative of EXPR as an expression you can read, evaluate or differentiate "
            "again.",
    "eval": "Value of EXPR at a point.",
    "fit": "Fit the parameters of \"LHS ~ MODEL\" to a data file by least squares.",
    "grad": "Value and gradient of EXPR at a point, by reverse mode.",
    "graph": "The tape of EXPR as a Graphviz graph, with values and gradients at a point.",
    "hessian": "The exact Hessian matrix of EXPR at a point, with its eigenvalues.",
    "minimize": "Minimise EXPR, or fit its parameters to the rows of a data file.",
}

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class CliError(click.ClickException):
    """A one-line ``Error: ...`` on stderr and exit status 2 (no usage block)."""

    exit_code = EXIT_BAD_INPUT


class AdcliGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AdcliError as err:
            raise CliError(err.render()) from None
        except RecursionError:
            raise CliError("input nests too deeply for this operation") from None
        except MemoryError:
            raise CliError("out of memory: the input is too large") from None


@click.group(cls=AdcliGroup, context_settings={"help_option_names": ["-h", "--help"],
                                               "max_content_width": 100})
@click.version_option(version=__version__, prog_name="adcli")  # no importlib.metadata scan
def cli() -> None:
    """Differentiate and optimise mathematical expressions.

    Write an expression such as "(w0 + w1*x - y)^2", or a program of let-bindings
    ("a = x^2; b = x*y; a + b"); pass it inline, as @FILE, or - for stdin.

    \b
    Exit status: 0 success, 1 the job ran but failed (e.g. an optimiser diverged),
    2 bad input (syntax, unknown name, missing value, unreadable file).
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, prog_name="adcli")
    except KeyboardInterrupt:
        click.echo("Interrupted", err=True)
        sys.exit(130)
