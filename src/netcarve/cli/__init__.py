"""The ``netcarve`` command line (typer). Heavy imports happen inside commands, so ``--help`` is fast."""
