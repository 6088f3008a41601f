"""From the homeserver in: durable intake, per-room processing, dead letters."""
