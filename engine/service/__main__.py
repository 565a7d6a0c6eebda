"""`python -m engine.service serve|worker|db upgrade`: the service commands without the rest of the CLI."""

from engine.service.cli import main

main(prog_name="smartcampaign")
