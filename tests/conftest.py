"""Shared pytest setup. Area-specific fixtures live beside their tests."""

import os

# Tests never read the developer's own configuration or home.
for _name in [n for n in os.environ if n.startswith("MOVIEGEN_")]:
    del os.environ[_name]
