"""Stand-in for ``deerflow.runtime.events``."""
