"""The service's queue: inbox, outbox and poll cursors.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "service_inbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("partition", sa.String(320), nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=True, unique=True),
        sa.Column("person_sfdc_id", sa.String(18), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("processed_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_service_inbox_pending", "service_inbox", ["id"],
        postgresql_where=sa.text("processed_at IS NULL"), sqlite_where=sa.text("processed_at IS NULL"),
    )  # fmt: skip
    op.create_index("ix_service_inbox_partition", "service_inbox", ["partition", "id"])
    op.create_index(
        "ix_service_inbox_dead", "service_inbox", ["id"],
        postgresql_where=sa.text("error IS NOT NULL"), sqlite_where=sa.text("error IS NOT NULL"),
    )  # fmt: skip
    op.create_table(
        "service_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("partition", sa.String(320), nullable=False),
        sa.Column("op", sa.Text, nullable=False),
        sa.Column("person_id", sa.Integer, nullable=True),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("previous", sa.String(255), nullable=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("result", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_service_outbox_pending", "service_outbox", ["id"],
        postgresql_where=sa.text("sent_at IS NULL"), sqlite_where=sa.text("sent_at IS NULL"),
    )  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":
        # local Salesforce-shaped ids for workers that run side by side (the store's counter row is one at a time)
        op.execute("CREATE SEQUENCE service_sfdc_ids START WITH 500000000")
    op.create_table(
        "service_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE service_sfdc_ids")
    op.drop_table("service_cursors")
    op.drop_index("ix_service_outbox_pending", table_name="service_outbox")
    op.drop_table("service_outbox")
    op.drop_index("ix_service_inbox_dead", table_name="service_inbox")
    op.drop_index("ix_service_inbox_partition", table_name="service_inbox")
    op.drop_index("ix_service_inbox_pending", table_name="service_inbox")
    op.drop_table("service_inbox")
