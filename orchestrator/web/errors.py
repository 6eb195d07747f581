"""Every error the API returns is JSON: ``{"message": ..., "errors": [{"path", "message"}]}``
(``errors`` only where there are several, e.g. each invalid config path)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import ConfigError, InvalidInputError, OrchestratorError, SelectionError

log = logging.getLogger("orchestrator.web")


class ApiError(Exception):
    """An error response: HTTP status, message, and optional per-path errors."""

    def __init__(
        self, status: int, message: str, errors: Sequence[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors or [])


def error_body(message: str, errors: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if errors:
        body["errors"] = list(errors)
    return body


def config_errors(exc: ConfigError) -> list[dict[str, Any]]:
    return [{"path": path, "message": message} for path, message in exc.problems]


def as_api_error(exc: OrchestratorError) -> ApiError:
    """The response for bad input the engine refused (config, selection, partition...)."""
    if isinstance(exc, ConfigError):
        return ApiError(422, str(exc).splitlines()[0].rstrip(":"), config_errors(exc))
    if isinstance(exc, SelectionError | InvalidInputError):
        return ApiError(422, str(exc))
    return ApiError(422, f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.errors), status_code=exc.status)

    @app.exception_handler(OrchestratorError)
    async def engine_error(_request: Request, exc: OrchestratorError) -> JSONResponse:
        err = as_api_error(exc)
        return JSONResponse(error_body(err.message, err.errors), status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "path": ".".join(str(p) for p in err.get("loc", ())),
                "message": str(err.get("msg", "invalid")),
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"path": "", "message": "invalid request"}
        return JSONResponse(
            error_body(f"invalid request: {first['path']}: {first['message']}", errors),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse(
            error_body(f"internal error: {type(exc).__name__}: {exc}"), status_code=500
        )
