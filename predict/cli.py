"""`onepass predict`: added by the predict stage (placeholder until it lands)."""

USER_ERRORS: tuple[type[BaseException], ...] = ()


def add_parser(commands) -> None:
    pass
