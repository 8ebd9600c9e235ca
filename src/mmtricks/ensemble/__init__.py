"""Model pool and ensemble selection over its members' validation predictions."""
