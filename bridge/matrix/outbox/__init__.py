"""To the homeserver out: queued Matrix side effects, sent in order per lane."""
