"""The audio stage."""
