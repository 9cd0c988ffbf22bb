"""The one exception type every side raises for a problem the user can act on."""


class MkeError(Exception):
    """A user-facing error: the message names the file, field or value and says what was expected.

    Command-line entry points print it on one line and exit with status 2; anything else that
    escapes is a bug and keeps its traceback.
    """
