"""Column kinds and problem type: inferred from a table, checked at predict time."""
from .infer import KINDS, PROBLEM_TYPES, Schema, infer_schema
from .validate import validate_frame

__all__ = ["KINDS", "PROBLEM_TYPES", "Schema", "infer_schema", "validate_frame"]
