"""Text to syntax tree: grammar, fast LALR driver and its tables, parse errors."""
