"""The one exception type for user-facing errors of the host tools."""


class UserError(Exception):
    """A mistake the user can fix: printed as `lowwater: <message>`, exit status 1."""
