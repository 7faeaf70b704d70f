"""Response bodies, encoded once with msgspec; every error has the same AEP-style shape.

`problem()` is the one place a `Rejected` becomes an HTTP response: the status comes from
`inlet.outcomes.STATUS`, 503 and 429 carry `Retry-After`, and no stack trace ever leaves.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.responses import Response

from inlet.outcomes import TITLE, Reason, Rejected
from inlet.telemetry import EVENTS_REJECTED

log = logging.getLogger("inlet.gateway")

ERROR_TYPE = "https://inlet.dev/errors/"

_encode = msgspec.json.Encoder().encode


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    type: str
    status: int
    title: str
    detail: str
    code: str
    report: dict[str, Any] | None = None


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(body), status, headers, media_type="application/json")


def problem_body(rejected: Rejected, report: dict[str, Any] | None = None) -> Problem:
    return Problem(
        type=ERROR_TYPE + rejected.reason.value,
        status=rejected.status,
        title=TITLE[rejected.reason],
        detail=rejected.detail,
        code=rejected.reason.value,
        report=report,
    )


def problem(rejected: Rejected, report: dict[str, Any] | None = None) -> Response:
    EVENTS_REJECTED.labels(rejected.reason.value).inc()
    headers = {}
    if rejected.retry_after is not None:
        headers["Retry-After"] = str(rejected.retry_after)
    if rejected.reason is Reason.unavailable:
        # The outage itself is logged once where it is seen (inlet.bus); the spool keeps data
        # safe meanwhile, so each refused request is a warning, not an operator alarm.
        log.warning("Answered %d %s: %s", rejected.status, rejected.reason.value, rejected.detail)
    elif rejected.status >= 500:
        log.error("Answered %d %s: %s", rejected.status, rejected.reason.value, rejected.detail)
    else:
        log.debug("Answered %d %s: %s", rejected.status, rejected.reason.value, rejected.detail)
    return json_response(problem_body(rejected, report), rejected.status, headers)


def not_found(detail: str) -> Response:
    return problem(Rejected(Reason.not_found, detail))
