"""Liveness and readiness, for load balancers and orchestrators: /healthz answers while
the process runs; /readyz only once the models, index and store are loaded (503 before,
and for good if loading failed, with the reason)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from bot.server.runtime import Runtime, runtime
from bot.server.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(rt: Annotated[Runtime, Depends(runtime)]) -> JSONResponse:
    # the reason stays in the server log: it names files and paths an outsider has no use for
    detail = "the assistant failed to load; the server log says why" if rt.state == "failed" else None
    body = Readiness(status=rt.state, workers=len(rt.pool), detail=detail)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if rt.ready else 503)
