"""The ``vtatune`` command line (the only layer that prints)."""
