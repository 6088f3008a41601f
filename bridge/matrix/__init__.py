"""The Matrix side of the bridge, in three concerns that depend on each other one way.

- :mod:`.inbox`: from the homeserver in. Intake commits each transaction's events before it is
  answered; workers then process them per room, in order, exactly once in effect.
- :mod:`.outbox`: to the homeserver out. Matrix side effects queued in the DB transaction of
  the change that caused them, sent in order per lane, retried durably.
- :mod:`.bridging`: what the bridge means. ``from_matrix`` turns inbox events into domain
  changes; ``to_matrix`` turns domain changes into outbox actions; ``homeserver_queries``
  answers the homeserver's user and alias queries synchronously.

Words used throughout:

ghost
    The Matrix user that stands for a network user (``@_pn_<network-user-id>:<domain>``),
    registered and puppeted by the bridge.
portal
    The Matrix room that stands for a network conversation (alias
    ``#_pn_conv_<conversation-id>:<domain>``). A direct conversation's portal is the DM room.
management room
    A Matrix user's direct room with the bridge bot: commands go in, notices come out.
lane
    One ordered queue of work. Inbox lanes are rooms (events of a room are processed in arrival
    order); outbox lanes are rooms or ``conv:<conversation-id>`` for a conversation whose portal
    may not exist yet. Different lanes proceed in parallel; one lane never does.
waiting invite
    A ghost invited to a Matrix group room that may not join yet (its user is not a connection
    of the inviter, or the group would have fewer than three participants); it joins when that
    changes (:mod:`.bridging.group_invites`).
dead letter
    An event or action that failed its attempts, kept with its reason instead of blocking its
    lane.
"""
