"""The read-only web page of `hippograph serve`: ask a question, see why each passage came back, walk the graph.

`mount(app)` adds to a FastAPI app:

- ``GET /``: the page (index.html, with a strict Content-Security-Policy); its state lives in the
  URL (``/?q=...&mode=...&k=...``) and it talks only to the documented JSON API (/stats,
  /retrieve, /neighbourhood), sending the bearer token the user typed (kept in sessionStorage);
- ``/ui/...``: its script, stylesheet and vendored libraries (Cytoscape.js, Swagger UI; pinned
  versions and licences in static/vendor/README.md), public like the spec: they hold no index data;
- ``GET /docs``: Swagger UI loading its assets from ``/ui/vendor`` instead of a CDN.

Plain files, no build step. Imports FastAPI only inside `mount` (the server module does the same).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["mount", "WEB_DIR", "STATIC_DIR", "PAGE_CSP"]

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
CYTOSCAPE_STYLE_HASH = "sha256-pgvDUBa4IjFA2yuSJ2cqcyxmNYJMborsd0ORcRv9vw8="
"""Hash of the one <style> Cytoscape.js 3.35.0 injects: `.__________cytoscape_container { position: relative; }`."""
PAGE_CSP = (
    f"default-src 'none'; script-src 'self'; style-src 'self' '{CYTOSCAPE_STYLE_HASH}'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Only this server's own files run on the page; nothing inline (but Cytoscape's one style), nothing from elsewhere."""


def mount(app: Any) -> None:
    """Serve the page at /, its assets under /ui and an offline Swagger UI at /docs (build the app with docs_url=None)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    headers = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

    @app.get("/", include_in_schema=False)
    def index_page() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title} API",
            swagger_js_url="/ui/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/ui/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/ui/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},  # no call to validator.swagger.io
        )

    app.mount("/ui", StaticFiles(directory=STATIC_DIR), name="ui")
