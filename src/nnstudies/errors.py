"""Errors a user can cause and fix: reported as one line, never as a traceback."""


class UserError(Exception):
    """Bad input (params, data files, checkpoints, environment): say what, where, what is allowed."""
