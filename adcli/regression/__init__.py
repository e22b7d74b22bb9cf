"""``adcli fit`` in memory: the formula, residuals and Jacobian, least squares."""
