"""One module per command family; shared option helpers live in :mod:`adcli.commands.common`."""
