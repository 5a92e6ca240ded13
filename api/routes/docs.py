"""`/docs`: FastAPI's Swagger UI page, and Swagger UI itself (script, stylesheet, favicon),
served from this API (vendored in api/static/swagger-ui, see its README): the page works with
no network beyond the API.

The page is served with a Content-Security-Policy that allows what it loads and nothing else:
its script, stylesheet and favicon from this origin ('self'), its one inline script (by hash),
the images Swagger's stylesheet inlines (`data:`), inline styles (Swagger UI sets them), and
requests to this origin (the schema, "Try it out"). The policy is read off the page when it is
built, so it follows FastAPI's page as it changes. The online validator badge, which would load
an image from a third party with this server's URL, is turned off.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

STATIC = Path(__file__).resolve().parent.parent / "static" / "swagger-ui"
ASSETS_URL = "/docs/static/"
# The files the page loads, and their content types.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


class _Assets(HTMLParser):
    """What a page loads: script sources, inline scripts, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self.inline: list[str] = []
        self.styles: list[str] = []
        self.icons: list[str] = []
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        src, href, rel = found.get("src"), found.get("href"), (found.get("rel") or "").split()
        if tag == "script" and src:
            self.scripts.append(src)
        elif tag == "script":
            self._script = []
        elif tag == "link" and href and "stylesheet" in rel:
            self.styles.append(href)
        elif tag == "link" and href and "icon" in rel:
            self.icons.append(href)

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.inline.append("".join(self._script))
            self._script = None


def _sources(urls: list[str]) -> list[str]:
    """CSP sources for these asset URLs: 'self' for this server's own (a path), else the URL;
    each once."""
    local = [url.startswith("/") and not url.startswith("//") for url in urls]
    own = ["'self'"] if any(local) else []
    return own + list(dict.fromkeys(url for url, here in zip(urls, local, strict=True) if not here))


def policy(html: str) -> str:
    """The Content-Security-Policy that lets `html` load what it names, and nothing else."""
    assets = _Assets()
    assets.feed(html)
    assets.close()
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in assets.inline
    ]
    directives = {
        "default-src": ["'none'"],
        "script-src": [*_sources(assets.scripts), *hashes],
        "style-src": [*_sources(assets.styles), "'unsafe-inline'"],
        "img-src": [*_sources(assets.icons), "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
    }
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


@functools.cache
def _asset(name: str) -> tuple[bytes, str]:
    """A vendored file's bytes and its entity tag, read once per process when first asked."""
    data = (STATIC / name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _serve(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    """The answer to a request for a vendored file: the file, or 304 when the client has it
    (browsers revalidate every time, `no-cache`, so a new version is never shadowed)."""

    async def asset(request: Request) -> Response:
        data, etag = _asset(name)
        headers = {"etag": etag, "cache-control": "no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(data, media_type=media_type, headers=headers)

    return asset


def router(title: str, openapi_url: str) -> APIRouter:
    """The `/docs` route of an app with this title and schema URL (its page is built once),
    and those of the files the page loads."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_js_url=ASSETS_URL + "swagger-ui-bundle.js",
        swagger_css_url=ASSETS_URL + "swagger-ui.css",
        swagger_favicon_url=ASSETS_URL + "favicon-32x32.png",
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body).decode()
    headers = {"content-security-policy": policy(html)}
    docs = APIRouter()

    @docs.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    for name, media_type in ASSETS.items():
        docs.add_api_route(ASSETS_URL + name, _serve(name, media_type), include_in_schema=False)
    return docs
