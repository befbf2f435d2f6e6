"""A small function app and a process harness for the dev host's tests (never deployed)."""
