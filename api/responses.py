"""JSON responses rendered by orjson (FastAPI's own ORJSONResponse is deprecated). A subclass
of Starlette's JSONResponse, so that /openapi.json documents the routes' response models."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
