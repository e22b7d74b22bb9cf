"""Shared fixtures."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from adcli.cli import cli


@pytest.fixture
def run():
    """Invoke the CLI in-process; returns click's Result (stdout and stderr kept apart)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke
