"""The script stage: an article becomes a validated script.yaml (or a dropped script is adopted)."""
