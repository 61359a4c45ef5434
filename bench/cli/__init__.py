"""The command line: one module per command (its arguments and what it does), shared options, and
``main`` with the verb registry."""
