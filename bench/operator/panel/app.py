"""The panel's web application: the page and its assets (all served from here, nothing from a CDN),
the event stream as server-sent events, the abort button and the answers to the bench's questions."""
from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bench.operator.events import Event
from bench.operator.prompts import PromptDesk

STATIC = Path(__file__).with_name("static")
POLL_S = 0.05  # how often a page's stream looks for new events: events reach the page within this
Source = Callable[[int], list[Event]]  # the events after a sequence number


def panel_app(events: Source, *, abort: Callable[[], None] | None = None, prompts: PromptDesk | None = None,
              token: str | None = None, closing: threading.Event | None = None) -> Starlette:
    """``abort`` None: a panel that only watches (``bench panel``); ``token``: every request must carry it;
    ``closing`` set: every page's stream ends (a stream is endless, and the server waits for it to stop)."""
    closing = closing or threading.Event()

    def allowed(request: Request) -> bool:
        if token is None:
            return True
        given = request.query_params.get("token") or request.headers.get("x-bench-token") or ""
        return hmac.compare_digest(given.encode(), token.encode())

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def check(request: Request) -> Response:
            if not allowed(request):
                return PlainTextResponse("panel: a token is required (the one printed when the run started)\n",
                                         status_code=403)
            return await handler(request)
        return check

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def stream(request: Request) -> Response:
        seq = int(request.headers.get("last-event-id") or request.query_params.get("after") or 0)

        async def lines() -> AsyncIterator[str]:
            nonlocal seq
            while not closing.is_set() and not await request.is_disconnected():
                found = events(seq)
                if found:
                    seq = found[-1].seq
                    yield "".join(f"id: {e.seq}\ndata: {e.to_json()}\n\n" for e in found)
                else:
                    await asyncio.sleep(POLL_S)

        return StreamingResponse(lines(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def stop(request: Request) -> Response:
        if abort is None:
            return JSONResponse({"error": "this panel only watches a run; stop it where it runs"}, status_code=409)
        abort()
        return JSONResponse({"aborted": True})

    async def answer(request: Request) -> Response:
        if prompts is None:
            return JSONResponse({"error": "this panel only watches a run"}, status_code=409)
        try:
            sent = await request.json()
        except ValueError:
            sent = None
        if not isinstance(sent, dict):
            return JSONResponse({"error": "the answer must be a JSON object of the form's fields"}, status_code=400)
        form = {str(k): str(v) for k, v in sent.items()}
        problem = prompts.answer(request.path_params["prompt"], form)
        if problem:
            return JSONResponse({"error": problem}, status_code=422)
        return JSONResponse({"taken": True})

    return Starlette(routes=[
        Route("/", guarded(page)),
        Route("/events", guarded(stream)),
        Route("/abort", guarded(stop), methods=["POST"]),
        Route("/prompts/{prompt}", guarded(answer), methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC)),
    ])
