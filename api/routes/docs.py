"""`/docs`: FastAPI's Swagger UI page, served with a Content-Security-Policy that allows what
this page loads and nothing else: its script and stylesheet (from the CDN FastAPI names), its
one inline script (by hash), its favicon, the images Swagger's stylesheet inlines (`data:`),
inline styles (Swagger UI sets them), and requests to this origin (the schema, "Try it out").
The policy is read off the page when it is built, so it follows FastAPI's page as it changes.
The online validator badge, which would load an image from a third party with this
server's URL, is turned off.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse


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
        "script-src": [*assets.scripts, *hashes],
        "style-src": [*assets.styles, "'unsafe-inline'"],
        "img-src": ["data:", *assets.icons],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
    }
    return "; ".join(" ".join([name, *sources]) for name, sources in directives.items())


def router(title: str, openapi_url: str) -> APIRouter:
    """The `/docs` route of an app with this title and schema URL; its page is built once."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - Swagger UI",
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body).decode()
    headers = {"content-security-policy": policy(html)}
    docs = APIRouter()

    @docs.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    return docs
