"""Running daemons on loopback: child processes and a local Synapse homeserver.

Used by ``bridge demo`` (a homeserver, the bridge and its PostgreSQL on one machine, for trying
the bridge out) and by the end-to-end tests, which run the same homeserver the same way.
Nothing here is needed to run the bridge in production.
"""
