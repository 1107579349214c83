"""The command line (``python -m pybpf``, ``pybpf``): :func:`pybpf.cli.main.main`
dispatches to a module per command."""
