"""The one error type of the sync server and the JSON body every refusal gets.

Each refusal is an :class:`ApiError`: a 4xx status, a short machine code and a
sentence naming what was wrong (the store, path, op index or limit) without
echoing any state. :func:`error_response` renders it as
``{"error": code, "detail": sentence}``. A last-resort handler turns anything
else (a bug, an exception in user code that escaped) into a 400
``request_failed`` that names no internals, and logs the traceback: no request
ever answers 500.

Example:
    >>> err = ApiError(404, "unknown_store", "no store named x")
    >>> response = error_response(err)
    >>> response.status_code, bytes(response.body)
    (404, b'{"error":"unknown_store","detail":"no store named x"}')
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from starlette.responses import Response

__all__ = ["CODES", "ApiError", "error_response", "last_resort"]

log = logging.getLogger("statekit.server")

#: Every error code the server sends, with its status (docs/sync-protocol.md).
CODES: Mapping[str, int] = {
    "malformed_json": 400,
    "invalid_query": 400,
    "request_failed": 400,
    "invalid_session": 401,
    "not_writable": 403,
    "cross_origin": 403,
    "missing_header": 403,
    "unknown_store": 404,
    "unknown_action": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "test_failed": 409,
    "version_mismatch": 412,
    "body_too_large": 413,
    "too_many_ops": 413,
    "unsupported_media_type": 415,
    "invalid_patch": 422,
    "path_not_found": 422,
    "too_deep": 422,
    "validation_failed": 422,
    "invalid_arguments": 422,
    "action_failed": 422,
    "rate_limited": 429,
}


class ApiError(Exception):
    """A refused request: ``status`` (4xx), ``code`` (see :data:`CODES`) and ``detail``.

    ``headers`` are added to the response (``Retry-After``, ``Allow``).

    Example:
        >>> ApiError(413, "too_many_ops", "101 ops; at most 100 per patch").status
        413
    """

    def __init__(
        self, status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        assert CODES.get(code) == status, (code, status)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(error: ApiError) -> Response:
    """The JSON response of ``error``."""
    body = json.dumps({"error": error.code, "detail": error.detail}, separators=(",", ":"))
    headers = {"Cache-Control": "no-store", **error.headers}
    return Response(body, error.status, headers, media_type="application/json")


def last_resort(exc: BaseException) -> Response:
    """Answer an unexpected exception with a 400 that leaks nothing; log the traceback."""
    log.error("statekit.server: request failed", exc_info=exc)
    return error_response(
        ApiError(
            400,
            "request_failed",
            f"the request could not be handled ({type(exc).__name__}); see the server log",
        )
    )
