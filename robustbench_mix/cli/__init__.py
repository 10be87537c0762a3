"""The commands: each parses its arguments, calls the library and maps errors to exit codes through
:func:`robustbench_mix.cli.common.handled`. ``python -m robustbench_mix.<command>`` runs them."""
