"""Operating the bridge: its state read for metrics and the status page, dead letters,
the admin page, ``bridge doctor``."""
