"""Stand-in for ``app.gateway``."""
