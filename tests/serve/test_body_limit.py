"""The upload limit as ASGI middleware, driven directly: a body over the limit never reaches the app,
whether its size is declared (refused before reading) or chunked (read up to the limit); one within
it reaches the app whole."""

from __future__ import annotations

import asyncio
import json

from onepass.serve.body_limit import BodySizeLimit

LIMIT = 10


def call(method: str, chunks: list[bytes], declared: bytes | None) -> tuple[int, dict, list[bytes] | None]:
    """One request through BodySizeLimit(LIMIT) -> (status, JSON body, what the app read or None if never called)."""
    seen: list[list[bytes]] = []

    async def app(scope, receive, send):
        read = []
        while True:
            message = await receive()
            read.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        seen.append(read)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    headers = [] if declared is None else [(b"content-length", declared)]
    scope = {"type": "http", "method": method, "headers": headers}
    asyncio.run(BodySizeLimit(app, LIMIT)(scope, receive, send))
    status = sent[0]["status"]
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return status, body, seen[0] if seen else None


def test_a_declared_size_over_the_limit_is_refused_unread():
    status, body, read = call("POST", [b"x" * 11], b"11")
    assert (status, read) == (413, None)
    assert "11 bytes, over this server's upload limit of 10 bytes" in body["error"]
    assert "--max-upload-mb" in body["error"]


def test_a_declared_size_that_is_not_a_number_is_a_400():
    status, body, read = call("POST", [b"x"], b"ten")
    assert (status, read) == (400, None) and body == {"error": "Content-Length 'ten' is not a number"}


def test_a_chunked_body_is_cut_off_at_the_limit():
    status, body, read = call("POST", [b"x" * 4] * 3, None)
    assert (status, read) == (413, None) and "over 12 bytes" in body["error"]


def test_bodies_within_the_limit_reach_the_app_whole():
    assert call("POST", [b"x" * 4, b"y" * 6], None) == (200, {}, [b"xxxxyyyyyy"])  # chunks joined into one message
    assert call("POST", [b"x" * 10], b"10") == (200, {}, [b"x" * 10])
    assert call("GET", [b"x" * 50], None) == (200, {}, [b"x" * 50])  # a GET is not limited
