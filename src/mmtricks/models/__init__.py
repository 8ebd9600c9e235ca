"""Encoders (one per modality), fusions and heads, assembled by :mod:`mmtricks.models.net`."""
