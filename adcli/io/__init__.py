"""Inputs: bounded reads, ``--at`` points, CSV tables, Dask sources; values at every row."""
