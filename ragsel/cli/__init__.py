"""The ``ragsel`` command line (typer + rich). One module per command group."""
