"""mongo tests."""
