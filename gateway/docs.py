"""Interactive API docs served by the gateway itself: Swagger UI and ReDoc, no CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from openapi_ui_bundles import redoc, swagger_ui

OPENAPI_URL = "/openapi.json"
SWAGGER_ASSETS = "/docs/assets"
REDOC_ASSETS = "/redoc/assets"


def install(app: FastAPI) -> None:
    """Serve /docs and /redoc with their scripts, styles and icons from this process."""
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=swagger_ui.static_path), name="swagger-ui")
    app.mount(REDOC_ASSETS, StaticFiles(directory=redoc.static_path), name="redoc")
    favicon = f"{SWAGGER_ASSETS}/favicon-32x32.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{app.title} - API reference",
            redoc_js_url=f"{REDOC_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
