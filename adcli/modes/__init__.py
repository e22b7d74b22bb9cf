"""``compare-modes``: forward, reverse and finite differences side by side, timed."""
