"""The ASGI app: API routers, pages, static assets, metrics, and the token check.

With a token set (``ORCHESTRATOR_API_TOKEN``), every request but ``/api/health`` and the
static assets must carry it: ``Authorization: Bearer <token>`` (scripts, Prometheus), or the
HTTP-only cookie the UI sets once the token is typed into its login form or given as
``?token=...`` on any page URL. Without it, the API answers 401 and pages show the login form
(and no run data).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator import __version__
from orchestrator.web import api_ops, api_runs, api_stream
from orchestrator.web.errors import error_body, install_error_handlers
from orchestrator.web.metrics import Metrics
from orchestrator.web.state import WebState

COOKIE = "orchestrator_token"
PAGES = ("/", "/runs", "/concurrency", "/workers")
_OPEN_PATHS = ("/api/health", "/static/", "/login", "/favicon.ico")


def _static_dir() -> str:
    return str(resources.files("orchestrator.web").joinpath("static"))


def _page(name: str) -> str:
    return resources.files("orchestrator.web").joinpath("static", name).read_text()


def _authorized(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), token):
        return True
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and hmac.compare_digest(cookie, token)


def _is_page(path: str) -> bool:
    return not path.startswith(("/api/", "/metrics", "/openapi.json"))


def create_app(state: WebState) -> FastAPI:
    """The web application serving ``state`` (see the module docstring)."""
    metrics = Metrics(state)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        metrics.start()
        try:
            yield
        finally:
            metrics.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="orchestrator",
        version=__version__,
        description="Launch, watch and operate runs: the API the web UI uses.",
        docs_url=None,  # Swagger UI loads from a CDN: nothing here fetches from the network
        redoc_url=None,
    )
    app.state.web = state
    app.state.metrics = metrics
    install_error_handlers(app)

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Response:
        token = state.token
        path = request.url.path
        if path.startswith("/static/"):  # revalidated (ETag), so an upgrade is seen at once
            response: Response = await call_next(request)
            response.headers["Cache-Control"] = "no-cache"
            return response
        if not token or path.startswith(_OPEN_PATHS):
            return await call_next(request)
        given = request.query_params.get("token")
        if given is not None and _is_page(path):
            if not hmac.compare_digest(given, token):
                return _login(path, "That token is not valid.", 401)
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = path + ("?" + urlencode(rest) if rest else "")
            response = RedirectResponse(target, status_code=303)
            _set_cookie(response, token, request)
            return response
        if _authorized(request, token):
            return await call_next(request)
        if _is_page(path):
            return _login(path + (f"?{request.url.query}" if request.url.query else ""), "", 401)
        sent = request.headers.get("authorization") or request.cookies.get(COOKIE)
        return JSONResponse(
            error_body(
                "that token is not valid (ORCHESTRATOR_API_TOKEN of the server)"
                if sent
                else "this server asks for a token: send 'Authorization: Bearer <token>' "
                "(ORCHESTRATOR_API_TOKEN)"
            ),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: str = Form(""), next: str = Form("/")) -> Response:
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        if not state.token or not hmac.compare_digest(token, state.token):
            return _login(target, "That token is not valid.", 401)
        response = RedirectResponse(target, status_code=303)
        _set_cookie(response, state.token, request)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    app.include_router(api_ops.build_router())
    app.include_router(api_runs.build_router())
    app.include_router(api_stream.build_router())

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    shell = _page("index.html")

    def page() -> HTMLResponse:
        return HTMLResponse(shell, headers={"Cache-Control": "no-store"})

    for path in PAGES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/runs/{run_id}", page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")

    return app


def _set_cookie(response: Response, token: str, request: Request) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=30 * 24 * 3600,
    )


def _login(next_path: str, message: str, status: int) -> HTMLResponse:
    from html import escape

    body = _page("login.html").replace("{{next}}", escape(next_path, quote=True))
    body = body.replace("{{message}}", escape(message))
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
