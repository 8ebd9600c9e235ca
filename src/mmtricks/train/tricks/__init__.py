"""Training tricks, each a small module with its own config keys and tests."""
