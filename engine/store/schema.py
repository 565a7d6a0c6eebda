"""The store's schema (SQLAlchemy 2 Core): the mirror of Salesforce, programs, runs, waits, activity.

Versioned by the `meta` table (`schema_version`, now 1): `engine.store.store.Store.open` creates a new
store at the current version and refuses a store written by a newer release. Tables and indexes added
without changing existing ones (batch runs, run steps, replay state) are created in older stores when they
are opened, so they need no new version. A release that changes the
schema raises SCHEMA_VERSION and upgrades older stores step by step in `Store.open`.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 1

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

persons = Table(
    "persons",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),  # lower-cased: compared case-insensitively
    Column("display_email", String(320), nullable=False),
    Column("sfdc_id", String(18), nullable=True, unique=True),
    Column("sfdc_type", String(16), nullable=True),
    Column("first_name", String(120), nullable=True),
    Column("last_name", String(120), nullable=True),
    Column("company", String(255), nullable=True),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sfdc_id", String(18), nullable=False, unique=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("type", String(255), nullable=True),
    Column("actual_cost", Float, nullable=True),
)

campaign_statuses = Table(
    "campaign_statuses",
    metadata,
    Column("campaign_id", Integer, primary_key=True),
    Column("label", String(255), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("responded", Boolean, nullable=False, default=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("person_id", Integer, primary_key=True),
    Column("campaign_id", Integer, primary_key=True),
    Column("status", String(255), nullable=False),
    Column("added_at", Float, nullable=False),
    Column("changed_at", Float, nullable=False),
    Index("ix_memberships_campaign", "campaign_id"),
)

programs = Table(
    "programs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("synced", Boolean, nullable=False, default=False),
    Column("sync_error", Text, nullable=True),
)

program_memberships = Table(
    "program_memberships",
    metadata,
    Column("person_id", Integer, primary_key=True),
    Column("program_id", Integer, primary_key=True),
    Column("status", String(255), nullable=False),
    Column("changed_at", Float, nullable=False),
    Index("ix_program_memberships_program", "program_id", "status"),  # batch selection: members of a program
)

# One row per (smart campaign, person): what qualification rules need, without scanning run history.
qualifications = Table(
    "qualifications",
    metadata,
    Column("campaign", String(255), primary_key=True),
    Column("person_id", Integer, primary_key=True),
    Column("last_started_at", Float, nullable=False),
    Column("runs", Integer, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign", String(255), nullable=False),
    Column("person_id", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("trigger", Text, nullable=False),  # JSON
    Index("ix_runs_campaign_person", "campaign", "person_id"),
)

continuations = Table(
    "continuations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, nullable=False),
    Column("campaign", String(255), nullable=False),
    Column("person_id", Integer, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("path", Text, nullable=False),  # JSON: where the flow resumes
    Column("depth", Integer, nullable=False),
    Column("chain", Text, nullable=False),  # JSON: campaigns that led here
    Index("ix_continuations_due", "due_at", "id"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("event_id", String(255), primary_key=True),
)

activity = Table(
    "activity",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("person_id", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(64), nullable=False),  # Marketo's activity names
    Column("smart_campaign", String(255), nullable=True),
    Column("target", String(255), nullable=True),
    Column("status", String(255), nullable=True),
    Column("origin", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Index("ix_activity_person", "person_id", "id"),
)

id_counters = Table(
    "id_counters",
    metadata,
    Column("prefix", String(8), primary_key=True),
    Column("next", Integer, nullable=False),
)

errors = Table(
    "errors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("message", Text, nullable=False),
)

# A batch campaign's run at one slot of its schedule: who was selected (in order), who ran. Members are marked
# done in the transaction of their run, so a run interrupted at any point resumes without running anyone twice.
batch_runs = Table(
    "batch_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("campaign", String(255), nullable=False),
    Column("slot_at", Float, nullable=False),
    Column("selected", Integer, nullable=False),
    Column("finished", Boolean, nullable=False, default=False),
    UniqueConstraint("campaign", "slot_at", name="ux_batch_runs_slot"),
)

batch_members = Table(
    "batch_members",
    metadata,
    Column("batch_id", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("person_id", Integer, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
)

# The steps of each run, in order (JSON), for results rebuilt from the store (a resumed `replay --store`).
run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("step", Text, nullable=False),
)

# A durable replay's own state: name -> value (events processed, the clock, schedule cursors).
replay_state = Table(
    "replay_state",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
)

# The errors a durable replay reported (its result's `errors`), in order.
replay_errors = Table(
    "replay_errors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Float, nullable=False),
    Column("message", Text, nullable=False),
)

__all__ = [
    "SCHEMA_VERSION",
    "UniqueConstraint",
    "activity",
    "batch_members",
    "batch_runs",
    "campaign_statuses",
    "campaigns",
    "continuations",
    "errors",
    "id_counters",
    "memberships",
    "meta",
    "metadata",
    "persons",
    "processed_events",
    "program_memberships",
    "programs",
    "qualifications",
    "replay_errors",
    "replay_state",
    "run_steps",
    "runs",
]
