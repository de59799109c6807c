"""Stand-in for ``deerflow.runtime``."""
