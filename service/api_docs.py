"""The interactive API documentation, /docs (Swagger UI) and /redoc, with the assets the
fastapi-offline package ships: the pages load nothing from outside the app."""

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import Response

# Only the package's asset folder is used; its FastAPIOffline factory would build the app.
ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"
# ReDoc's bundle shows its vendor's logo from the vendor's CDN; served with an empty inline
# image in its place, the page asks nothing of any other host.
REDOC_VENDOR_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = "data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'/>"

PAGE_POLICY = (
    "default-src 'none'; script-src {scripts}; style-src {styles}; img-src 'self' data:; "
    "connect-src 'self'; worker-src {workers}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Page:
    html: str
    policy: str  # its Content-Security-Policy


def urls(assets: dict[str, str]) -> dict[str, str]:
    """Each asset's URL where the app serves the package's asset folder."""
    return {name: f"{ASSETS_URL}/{file}" for name, file in assets.items()}


def inline_script_hashes(html: str) -> str:
    """CSP sources allowing exactly the page's inline scripts, and nothing else inline."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() for script in scripts)
    return " ".join(f"'sha256-{digest}'" for digest in digests)


def swagger_page(title: str, openapi_url: str) -> Page:
    assets = {
        "swagger_js_url": "swagger-ui-bundle.js",
        "swagger_css_url": "swagger-ui.css",
        "swagger_favicon_url": FAVICON,
    }
    # Swagger UI would otherwise send the spec to validator.swagger.io for a badge.
    html = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_ui_parameters={"validatorUrl": None},
        **urls(assets),
    ).body.decode()
    # FastAPI writes the init as an inline script: its hash lets that one script run
    # without 'unsafe-inline'. The page is built once, so the hash is computed once.
    scripts = f"'self' {inline_script_hashes(html)}"
    return Page(html, PAGE_POLICY.format(scripts=scripts, styles="'self'", workers="'none'"))


def redoc_page(title: str, openapi_url: str) -> Page:
    assets = {"redoc_js_url": REDOC_JS, "redoc_favicon_url": FAVICON}
    html = get_redoc_html(
        openapi_url=openapi_url, title=f"{title} - ReDoc", with_google_fonts=False, **urls(assets)
    ).body.decode()
    # ReDoc styles itself with <style> elements it writes at run time (styled-components),
    # which no hash can name; its search index runs in a worker made from a blob: URL.
    return Page(html, PAGE_POLICY.format(scripts="'self'", styles="'self' 'unsafe-inline'", workers="blob:"))


def docs_pages(title: str, openapi_url: str) -> dict[str, Page]:
    return {"/docs": swagger_page(title, openapi_url), "/redoc": redoc_page(title, openapi_url)}


def docs_router(pages: dict[str, Page]) -> APIRouter:
    """The pages, and ReDoc's bundle without its one outside request (before the assets' mount)."""
    router = APIRouter(include_in_schema=False)
    for path, page in pages.items():
        router.add_api_route(path, serving(page.html.encode(), "text/html; charset=utf-8"), methods=["GET"])
    bundle = (ASSETS / REDOC_JS).read_text().replace(REDOC_VENDOR_LOGO, EMPTY_IMAGE).encode()
    router.add_api_route(f"{ASSETS_URL}/{REDOC_JS}", serving(bundle, "text/javascript; charset=utf-8"), methods=["GET"])
    return router


def serving(body: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def serve() -> Response:
        return Response(body, media_type=media_type)

    return serve
