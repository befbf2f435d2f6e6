"""Write side: HTTP-triggered commands. Each route is a thin adapter over a handler."""

from commands.functions import bp

__all__ = ["bp"]
