"""Salesforce API calls per day and endpoint (what `smartcampaign status` and the metrics report).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_api_calls",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("service_api_calls")
