"""Propagation of uncertainty through an expression (``adcli propagate``, ``adcli.propagate``):
inputs with standard uncertainties and correlations (:mod:`.inputs`), and the GUM's first- and
second-order propagation with exact derivatives and a Monte Carlo check (:mod:`.gum`)."""
