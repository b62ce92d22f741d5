"""The slides stage."""
