"""The service: an HTTP API that takes events into a durable inbox, and workers that run them through the engine."""
