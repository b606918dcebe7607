"""The study's one user error; its own light module, so that building the CLI's parser imports no torch."""

from onepass.errors import UserError


class StudyError(UserError, ValueError):
    """A study config or study folder the user must fix; the message names the file, the
    configuration and the field, and the CLI prints it as one line."""
