"""``bridge demo``: the whole bridge on one machine, from one command.

In a data directory of its own (``bridge-demo/`` by default) it runs the bridge's embedded
PostgreSQL, a local Synapse on loopback with the bridge registered, and the bridge itself; the
first time it also sets up a scene to look at: a Matrix user with a password, two network users,
a connection and a direct conversation between the Matrix user and one of them with messages
both ways, a group conversation with its portal room, and a notification. It then prints how to
log in from a Matrix client and how to call the REST API as each network user, and runs until
Ctrl-C. The next run reuses all of it and is ready in seconds; ``--reset`` starts over.

Modules: ``layout`` (the data directory), ``progress`` (one line per step, failures that say
what to do), ``prepare`` (configs on the first run), ``seed`` (the scene, through the REST API
and a Matrix client, the way people would make it), ``report`` (what to do next),
``command`` (the sub-command itself).
"""
