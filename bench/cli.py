"""`onepass bench`: added by the bench stage (placeholder until it lands)."""

USER_ERRORS: tuple[type[BaseException], ...] = ()


def add_parser(commands) -> None:
    pass
