"""Domain logic, one module per domain. No Flask request objects here: views, the API,
CLI commands and workers all call the same functions."""


class ServiceError(Exception):
    """A rule was broken; the message is safe to show to the user."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
