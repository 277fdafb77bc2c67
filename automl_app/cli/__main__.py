"""`python -m automl_app.cli …` (how a parallel search starts its chief and workers)."""

from automl_app.cli import main

main()
