"""`python -m engine.cli ...`: the `smartcampaign` command without its console script."""

from engine.cli import main

main()
