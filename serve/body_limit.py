"""ASGI middleware: a request body over the server's upload limit gets 413 before the app reads it."""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimit:
    """A request body over `max_bytes` gets 413 before the app reads it.

    A declared Content-Length is checked up front; a chunked body is read up to the limit first.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(send, 400, f"Content-Length {declared.decode(errors='replace')!r} is not a number")
            elif int(declared) > self.max_bytes:
                await self._refuse(send, 413, self._message(int(declared)))
            else:
                await self.app(scope, receive, send)
            return
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send, 413, self._message(size, at_least=True))
                return
            body.append(chunk)
            more = message.get("more_body", False)
        replay: list[Message] = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def replay_receive() -> Message:
            if replay:
                return replay.pop()
            return await receive()

        await self.app(scope, replay_receive, send)

    def _message(self, size: int, at_least: bool = False) -> str:
        limit_mb = self.max_bytes / (1024 * 1024)
        return (
            f"the request body is {'over ' if at_least else ''}{size} bytes, over this server's upload limit of "
            f"{self.max_bytes} bytes ({limit_mb:g} MB; `onepass serve --max-upload-mb` sets it)"
        )

    @staticmethod
    async def _refuse(send: Send, status: int, message: str) -> None:
        response = JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"})
        await response({"type": "http"}, _never_receive, send)


async def _never_receive() -> Message:
    await asyncio.Event().wait()  # a response that does not read the request never calls this
    return {"type": "http.disconnect"}
