"""Code vulture cannot see used (``[tool.vulture]`` in pyproject.toml scans bridge, bench, tests).

Each name is here for a reason given beside it; anything else vulture reports is dead code.
"""

# Called by mautrix: the state store interface HomeserverStateStore implements.
_.get_member  # bridge/matrix/outbox/intents.py
_.set_member
_.set_membership
_.get_member_profiles
_.set_members
_.has_full_member_list
_.has_power_levels_cached
_.get_power_levels
_.set_power_levels
_.has_create_cached
_.get_create
_.set_create
_.has_encryption_info_cached
_.is_encrypted
_.get_encryption_info
_.set_encryption_info
_.has_power_level
memberships  # their parameters, part of the signatures
only_membership

# Parameters of protocol methods (__exit__).
exc_type  # bridge/db/embedded.py
tb

# Columns of a row kept on its record: read where the record is shown or compared.
received_at  # bridge/matrix/inbox/events.py InboxEvent
updated_at  # bridge/users/models.py NetworkUser

# The REST API's, removed with its typed models (issue 10, items 1 to 3): delete these lines then.
required_text  # bridge/api/body.py
token_user_id  # bridge/api/context.py Principal
Unrecognized  # bridge/errors.py
Unavailable

# Columns of a row kept in its record (read by the status page's template or for debugging).
_.forced_txn  # bridge/appservice/gap_store.py
_.closed_at
_.invited_at  # bridge/matrix/bridging/invite_store.py
