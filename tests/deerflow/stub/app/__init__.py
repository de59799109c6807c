"""Stand-in for DeerFlow's gateway package (``app``)."""
