"""``python -m workflow_scripts.analysis.figures``: the figures CLI, ``workflow_scripts.analysis.figures.draw``."""

from workflow_scripts.analysis.figures.draw import main

main()
