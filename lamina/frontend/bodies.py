"""Request bodies as the control plane reads them: one JSON object, or Lambda's error."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from lamina.frontend.errors import SerializationFailed


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SerializationFailed(f"Could not parse request body: {exc}") from exc
    if not isinstance(doc, dict):
        raise SerializationFailed("The request body must be a JSON object")
    return doc
