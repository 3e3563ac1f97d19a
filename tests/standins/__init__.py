"""Stand-ins the tests serve or run (named as such: they are not the real services)."""
