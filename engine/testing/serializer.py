"""Syrupy support: replay results stored in amber snapshots as readable text (see `engine.testing.render`).

`CampaignSnapshotExtension` is syrupy's amber extension, with one difference: a `ReplayResult` (what
`campaign_rules(...).replay(...)` returns) is stored as its rendered text, not as a nested dict. Everything
else serializes exactly as amber does, into the same `__snapshots__/*.ambr` files, so other snapshots in a
project are untouched. The pytest plugin makes the `snapshot` fixture use it; to use it explicitly:

    def test_x(campaign_rules, snapshot):
        assert campaign_rules("rules/").replay(...) == snapshot(extension_class=CampaignSnapshotExtension)
"""

from __future__ import annotations

from typing import Any

from syrupy.extensions.amber import AmberSnapshotExtension
from syrupy.extensions.amber.serializer import AmberDataSerializer, AmberDataSerializerPlugin

from engine.testing.harness import ReplayResult

__all__ = ["CampaignDataSerializer", "CampaignSnapshotExtension", "ReplayResultPlugin"]


class ReplayResultPlugin(AmberDataSerializerPlugin):
    """Serializes a `ReplayResult` as its readable text: bare at the top level, a multi-line string inside."""

    @classmethod
    def is_data_serializable(cls, data: Any) -> bool:
        return isinstance(data, ReplayResult)

    @classmethod
    def serialize(cls, data: Any, **kwargs: Any) -> str:
        assert isinstance(data, ReplayResult)
        text = data.render()
        depth = int(kwargs.get("depth", 0))
        if depth == 0:
            return text
        return AmberDataSerializer.serialize_string(text, depth=depth)


class CampaignDataSerializer(AmberDataSerializer):
    """Amber, plus `ReplayResultPlugin`. Same VERSION and file format, so existing snapshots stay valid."""

    serializer_plugins = (ReplayResultPlugin, *(AmberDataSerializer.serializer_plugins or ()))


class CampaignSnapshotExtension(AmberSnapshotExtension):
    serializer_class = CampaignDataSerializer
