"""Network to Matrix: domain changes turned into outbox actions, in the same DB transaction."""
