"""``adcli explain EXPR --wrt x --check ANSWER``: a derivative worked out by hand, checked
against adcli's (the work is :mod:`adcli.derive.check`; this is its command line)."""

from __future__ import annotations

import click

from ..errors import AdcliError, escape_control
from ..function import Function, parse
from .common import emit_json, parse_names


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
    if as_json:
        emit_json(result.to_json())
    else:
        for line in lines(result):
            click.echo(line)
    if not result.agree:
        raise click.exceptions.Exit(1)


def lines(result) -> list[str]:
    """The report for people: per answer, the verdict, where it differs and what remains."""
    from ..output.plain import num

    out = []
    for v in result.verdicts:
        name = escape_control(v.name)
        rel = v.relative()
        seeded = f"seed {result.seed}"
        if v.agree:
            out.append(f"d/d{name}: your answer agrees with adcli's derivative at "
                       f"{len(v.points)} random points ({seeded}; largest relative difference "
                       f"{num(float(rel.max()), 2)})")
        else:
            out.append(f"d/d{name}: your answer DIFFERS from adcli's derivative at "
                       f"{int(v.differs.sum())} of {len(v.points)} random points ({seeded})")
            for i in [int(i) for i in v.differs.nonzero()[0][:5]]:
                at = ", ".join(f"{escape_control(k)}={num(x, 6)}" for k, x in v.points[i].items())
                out.append(f"  at {at}: adcli {num(v.adcli[i])}, yours {num(v.theirs[i])} "
                           f"(relative difference {num(float(rel[i]), 3)})")
        if v.symbolic == "equal":
            out.append("  symbolically equal: adcli's derivative minus yours simplifies to 0")
        elif v.difference is not None and not v.agree:
            out.append(f"  adcli's derivative minus yours simplifies to {v.difference}")
    return out
