"""deerflow tests."""
