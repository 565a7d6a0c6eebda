"""Alembic environment: runs on the connection `engine.service.schema` hands over (never a URL from a file)."""

from __future__ import annotations

from alembic import context

from engine.service.queue import service_metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always run through engine.service.schema
    raise RuntimeError("run migrations with `smartcampaign db upgrade`")

context.configure(connection=connection, target_metadata=service_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
