"""Every error an HTTP request can end in, as JSON: {"error": "<what was wrong>"} with its status.

A client's mistake is its 4xx and says what to fix; an overloaded or starting server is 503 with
Retry-After; anything else is a 500 whose details go to the server log, not to the client. Routes
get this by `json_errors`; Starlette's own routing errors (no such path, wrong method) by
`EXCEPTION_HANDLERS`. The upload limit's 413 comes from its middleware (serve/body_limit.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from onepass.data.image import BadImage
from onepass.serve.batching import ServiceUnavailable

logger = logging.getLogger("onepass.serve")

Endpoint = Callable[[Request], Awaitable[Response]]


class ClientError(Exception):
    """A request the client must fix: HTTP `status` with {"error": message}."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def error_response(request: Request, error: Exception) -> JSONResponse:
    """The JSON answer to `error`, raised while serving `request`."""
    if isinstance(error, ClientError):
        return JSONResponse({"error": str(error)}, status_code=error.status)
    if isinstance(error, BadImage):
        return JSONResponse({"error": f"bad image upload: {error}"}, status_code=error.status)
    if isinstance(error, HTTPException):
        return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)
    if isinstance(error, ServiceUnavailable):
        logger.error("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "1"})
    logger.error("unexpected error serving %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse({"error": "internal server error; the server log has the details"}, status_code=500)


def json_errors(endpoint: Endpoint) -> Endpoint:
    """`endpoint`, with every exception it raises answered by `error_response`."""

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as error:
            return error_response(request, error)

    return wrapped


async def _routing_error(request: Request, error: Exception) -> Response:
    return error_response(request, error)


# Starlette raises HTTPException for a path no route has (404) or a method a route lacks (405).
EXCEPTION_HANDLERS = {HTTPException: _routing_error}
