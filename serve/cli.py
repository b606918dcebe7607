"""`onepass serve`: added by the serve stage (placeholder until it lands)."""

USER_ERRORS: tuple[type[BaseException], ...] = ()


def add_parser(commands) -> None:
    pass
