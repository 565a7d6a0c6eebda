"""Alembic migrations of the service's tables (inbox, outbox, cursors): `smartcampaign db upgrade`."""
