"""``adcli explain EXPR --wrt x --check ANSWER``: a derivative worked out by hand, checked
against adcli's (the work is :mod:`adcli.derive.check`; this is its command line)."""

from __future__ import annotations

import click

from ..errors import AdcliError
from ..function import Function, parse
from .common import parse_names, show


def run_check(function: Function, fixed: dict[str, float], answers: tuple[str, ...],
              wrt: str | None, seed: int, as_json: bool, max_size: int, *,
              other: bool = False) -> None:
    """Parse the answers, check them, report; exit status 1 when one differs."""
    from ..derive.check import NoDomain, check

    if not answers:
        raise AdcliError("--wrt is for --check (explain's transcript differentiates by every "
                         "variable)")
    if other:
        raise AdcliError("--check does not go with --mode forward, --direction or --paths")
    names = parse_names(wrt, function=function)
    tape = function.tape(set(fixed) | set(names or ()))
    free = [n for n in tape.inputs if n not in fixed]
    if names is None:
        if len(free) != 1:
            raise AdcliError(f"--check needs --wrt NAME: EXPR has {len(free)} variables "
                             f"({', '.join(free) or 'none'}) besides those fixed by --at")
        names = free
    for name in names:
        if name not in tape.inputs:
            raise AdcliError(f"--wrt '{name}' is not a variable of EXPR (variables: "
                             f"{', '.join(tape.inputs) or 'none'})")
        if name in fixed:
            raise AdcliError(f"--wrt '{name}' is also fixed by --at; the check draws the "
                             "values of the variables it differentiates by")
    if len(answers) != len(names):
        raise AdcliError(f"--check is given {len(answers)} time{'s' if len(answers) != 1 else ''}"
                         f" for {len(names)} --wrt name{'s' if len(names) != 1 else ''}: give "
                         "one ANSWER per name, in the order of --wrt")
    parsed = []
    for number, (name, text) in enumerate(zip(names, answers), 1):
        which = f"--check ANSWER {number} (d/d{name})" if len(names) > 1 else "--check ANSWER"
        try:
            answer = parse(text, max_bytes=max_size or None).tape(set(tape.inputs))
        except AdcliError as err:
            err.message = f"{which}: {err.message}"
            err.args = (err.message,)
            raise
        unknown = [n for n in answer.inputs if n not in tape.inputs]
        if unknown:
            raise AdcliError(f"{which} uses '{unknown[0]}', which is not a variable of EXPR "
                             f"(variables: {', '.join(tape.inputs) or 'none'})")
        parsed.append((name, answer, text))
    try:
        result = check(tape, parsed, fixed, seed=seed)
    except NoDomain as err:
        raise AdcliError(str(err)) from None
    show(result, as_json)
    if not result.agree:
        raise click.exceptions.Exit(1)
