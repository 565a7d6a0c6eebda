"""Replay: the interpreter over a world file and an event file, on the embedded org, deterministic (REPLAY.md)."""
