"""The syntax tree, the tape, lowering, the plain sweeps, unparsing and diagnosis."""
