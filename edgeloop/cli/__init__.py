"""The `edgeloop` command: one module per command group."""
