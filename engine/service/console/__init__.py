"""The operator console served by `smartcampaign serve` at `/` (see docs/console.md)."""
