"""The read-only HTTP API of the audit queries (aiohttp), behind a bearer token.

    GET /api/v1/{compliance|breaches|departments|accounts}?...&format=json|csv&limit=&offset=
    GET /api/v1/timeline/{request_id}?account=...
    GET /healthz                      (no token: for load balancers)

Query parameters are those of `greenlane audit ...` (`from`, `to`, `month`, `by`, `period`,
`tier`, `account`, `department`, `as_of`, `window_days`). JSON answers are
`{"columns", "items", "total", "limit", "offset", "next"}`; CSV answers carry the page's rows
under a header line, with the total in the `X-Total-Count` header and the next page in `Link`.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from greenlane.audit.queries import AuditQueries, QueryError, Result, run

_QUERIES = web.AppKey("queries", AuditQueries)
_TOKEN = web.AppKey("token", bytes)
_PAGE = web.AppKey("page", tuple)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/healthz":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    expected = request.app[_TOKEN]
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise web.HTTPUnauthorized(
            text=orjson.dumps({"error": "missing or wrong bearer token"}).decode(),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="greenlane-audit"'},
        )
    return await handler(request)


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit():
        raise QueryError(f"{name}: {text!r} is not a whole number")
    return min(int(text), high)


async def _query(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name", "timeline")
    params = dict(request.query)
    if "request_id" in request.match_info:
        params["request"] = request.match_info["request_id"]
    default, high = request.app[_PAGE]
    try:
        limit = max(1, _int(request, "limit", default, high))
        offset = _int(request, "offset", 0, 2**31)
        fmt = params.get("format", "json")
        if fmt not in ("json", "csv"):
            raise QueryError(f"format {fmt!r}: use json or csv")
        result: Result = await asyncio.to_thread(run, request.app[_QUERIES], name, params)
    except QueryError as exc:
        raise web.HTTPBadRequest(
            text=orjson.dumps({"error": str(exc)}).decode(), content_type="application/json"
        ) from None
    total = len(result.rows)
    page = result.page(limit, offset)
    next_url = None
    if offset + limit < total:
        next_url = str(request.rel_url.update_query({"offset": offset + limit, "limit": limit}))
    headers = {"X-Total-Count": str(total)}
    if fmt == "csv":
        if next_url:
            headers["Link"] = f'<{next_url}>; rel="next"'
        return web.Response(
            text=page.to_csv(),
            content_type="text/csv",
            charset="utf-8",
            headers={**headers, "Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    body: dict[str, Any] = {
        "query": name,
        "columns": list(page.columns),
        "items": page.rows,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next": next_url,
        **({"meta": page.meta} if page.meta else {}),
    }
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_api(queries: AuditQueries, token: str) -> web.Application:
    """The API application; `token` must be non-empty (an open audit API is refused)."""
    if not token:
        raise ValueError("the audit API needs a bearer token: set GREENLANE_AUDIT_TOKEN")
    settings = queries.settings
    app = web.Application(middlewares=[_bearer])
    app[_QUERIES] = queries
    app[_TOKEN] = token.encode()
    app[_PAGE] = (settings.page_size, settings.max_page_size)
    app.router.add_get("/healthz", _health)
    app.router.add_get("/api/v1/timeline/{request_id}", _query, name="timeline")
    app.router.add_get("/api/v1/{name:compliance|breaches|departments|accounts|timeline}", _query)
    return app
