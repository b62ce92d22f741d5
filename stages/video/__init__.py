"""The video stage."""
