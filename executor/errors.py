"""Errors a user can fix; their message says how."""


class UserError(Exception):
    """An error the user can fix; the message says how."""
