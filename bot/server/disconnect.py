"""Cancel a request's handler when its client goes away, so that a turn still waiting
for an inference worker is dropped instead of computed for nobody.

Starlette cancels a streamed response when the client disconnects (it listens for
`http.disconnect` while it streams), but a plain JSON route is never told: under uvicorn
the handler runs to the end and its answer is thrown away. This middleware listens for
the disconnect itself once the handler has read the request body (the point from which
the handler no longer needs `receive`), and cancels the handler. What is cancelled is the
*waiting*: a call that a worker has already started runs to its end (a turn is stored
whole or not at all), see `bot.server.inference`.
"""

from __future__ import annotations

import asyncio

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CancelOnDisconnectMiddleware:
    """For requests with the given `methods` (those that queue work): cancel the handler
    when the client disconnects before the response is complete."""

    def __init__(self, app: ASGIApp, methods: frozenset[str] = frozenset({"POST"})):
        self.app, self.methods = app, methods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return

        body_read = asyncio.Event()
        after_body: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        complete = False

        async def watched_receive() -> Message:
            if body_read.is_set():
                # the listener below owns `receive` now: share what it got
                return await asyncio.shield(after_body)
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read.set()
                if message["type"] == "http.disconnect" and not after_body.done():
                    after_body.set_result(message)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True  # before sending: the disconnect that follows is not a client leaving
            await send(message)

        async def listen(handler: anyio.CancelScope) -> None:
            await body_read.wait()
            if not after_body.done():
                after_body.set_result(await receive())
            if after_body.result()["type"] == "http.disconnect" and not complete:
                handler.cancel()

        with anyio.CancelScope() as handler:
            listener = asyncio.ensure_future(listen(handler))
            try:
                await self.app(scope, watched_receive, tracking_send)
            finally:
                listener.cancel()
