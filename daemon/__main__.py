"""``python -m daemon ...`` is ``moviegen ...``."""

from daemon.cli import main

if __name__ == "__main__":
    main()
