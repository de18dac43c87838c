"""Gateway building blocks: client keys, per-key rate limits, conversation stickiness and metrics.

Each module stands alone and is tested alone; the server wires them together:

- ``keys``: client API keys (stored only as hashes), constant-time authentication, model permissions, and the
  ``translator keys`` command that mints them.
- ``ratelimit``: requests, tokens and concurrent requests per key per minute, in process memory or in Redis.
- ``sticky``: which upstream a conversation went to, so its next turn goes there too (memory or Redis).
- ``metrics``: Prometheus counters and histograms on a per-app registry.
- ``redis_health``: whether Redis answers, one view per process that every Redis user above shares: an outage
  logged once each way, counted, and not waited on (``redis.on_error`` decides what rate limits do meanwhile).
- ``upstream_health``: upstream cool-downs shared through Redis, so every worker and replica keeps away.
"""
