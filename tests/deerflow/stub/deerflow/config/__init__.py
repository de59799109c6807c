"""Stand-in for ``deerflow.config``."""
