"""Errors about user input that the CLI reports in one line, without a traceback."""


class DataError(ValueError):
    """Data that cannot be used as given: a corrupt image, a malformed annotation file or record.

    The message names the file (and the record) and says what would fix it.
    """
