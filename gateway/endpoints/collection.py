"""AEP streaming ingestion: `POST /collection/{connectionId}` and `/collection/batch/{connectionId}`.

The path of one message: read the body (size-limited) → decode into Structs → validate against
the connection and dataset → publish to JetStream → wait for the ack → answer with AEP's
response shape. The answer is 200 only when JetStream has the message.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from gateway import auth, body
from gateway.decode import decode_batch, decode_message, retry_key_of
from gateway.publish import Accepted as Stored
from gateway.responses import json_response, problem, problem_body
from gateway.schema_check import schema_violations
from inlet.config import Config, Connection
from inlet.messages import BusMessage
from inlet.outcomes import TITLE, Reason, Rejected
from inlet.schemas.failures import SchemaFailure
from inlet.telemetry import EVENTS_REJECTED


class SyncValidation(msgspec.Struct):
    status: str = "pass"


class SingleResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    inletId: str
    xactionId: str
    receivedTimeMs: int
    syncValidation: SyncValidation | None = None
    # The legacy `synchronousValidation=true` parameter is answered under its own name.
    synchronousValidation: SyncValidation | None = None


class Accepted(msgspec.Struct, kw_only=True):
    xactionId: str


class Failed(msgspec.Struct, kw_only=True):
    statusCode: int
    message: str
    code: str


class BatchResponse(msgspec.Struct, kw_only=True):
    inletId: str
    batchId: str
    receivedTimeMs: int
    responses: list[Accepted | Failed]


def _connection(request: Request, config: Config) -> Connection:
    connection_id = request.path_params["connection_id"]
    connection = config.connection(connection_id)
    if connection is None:
        raise Rejected(Reason.unknown_connection, f"no streaming connection {connection_id!r}")
    if connection.authenticated:
        auth.require_token(request, connection.tokens, connection.token_hashes)
    request.app.state.rate_limiter.take(f"connection:{connection.id}", connection.rate_limit)
    return connection


def _xaction_id(received_ms: int, stored: Stored, index: int) -> str:
    """`<received ms>:<stream sequence, or "spool">:<index in the request>`."""
    return f"{received_ms}:{'spool' if stored.spooled else stored.seq}:{index}"


async def single(request: Request) -> Response:
    state = request.app.state
    config: Config = state.config
    sync = request.query_params.get("syncValidation", "").lower() == "true"
    legacy_sync = request.query_params.get("synchronousValidation", "").lower() == "true"
    received_ms = int(time.time() * 1000)
    try:
        connection = _connection(request, config)
        body.require_json(request)
        data = await body.read(request, config.http.max_message_bytes, Reason.message_too_large)
        message = decode_message(data, config, connection, received_ms,
                                 retry_key_of(request.headers.get("idempotency-key"), 0))
        if (sync or legacy_sync) and isinstance(message, SchemaFailure):
            raise message.rejected()  # answered with every violation, not stored
        (outcome,) = await state.publisher.publish([message])
        if isinstance(outcome, Rejected):
            raise outcome
    except Rejected as rejected:
        return problem(rejected, _validation_report(rejected) if sync or legacy_sync else None)
    return json_response(
        SingleResponse(
            inletId=connection.id,
            xactionId=_xaction_id(received_ms, outcome, 0),
            receivedTimeMs=received_ms,
            syncValidation=SyncValidation() if sync else None,
            synchronousValidation=SyncValidation() if legacy_sync else None,
        )
    )


async def batch(request: Request) -> Response:
    """Always 207 once the envelope is readable: one status per message, in order."""
    state = request.app.state
    config: Config = state.config
    received_ms = int(time.time() * 1000)
    try:
        connection = _connection(request, config)
        body.require_json(request)
        data = await body.read(request, config.http.max_request_bytes)
        raws = decode_batch(data)
        if len(raws) > config.http.max_batch_messages:
            raise Rejected(
                Reason.too_many_messages,
                f"{len(raws)} messages; the limit is {config.http.max_batch_messages} per request",
            )
    except Rejected as rejected:
        return problem(rejected)

    outcomes: list[BusMessage | SchemaFailure | Rejected] = []
    idempotency_key = request.headers.get("idempotency-key")
    for index, raw in enumerate(raws):
        try:
            outcomes.append(decode_message(bytes(raw), config, connection, received_ms,
                                           retry_key_of(idempotency_key, index)))
        except Rejected as rejected:
            outcomes.append(rejected)
    valid = [o for o in outcomes if not isinstance(o, Rejected)]
    try:
        acks = iter(await state.publisher.publish(valid)) if valid else iter(())
    except Rejected as rejected:
        return problem(rejected)

    responses: list[Accepted | Failed] = []
    for index, outcome in enumerate(outcomes):
        result = outcome if isinstance(outcome, Rejected) else next(acks)
        if isinstance(result, Rejected):
            EVENTS_REJECTED.labels(result.reason.value).inc()
            responses.append(
                Failed(statusCode=result.status, message=result.detail, code=result.reason.value)
            )
        else:
            responses.append(Accepted(xactionId=_xaction_id(received_ms, result, index)))
    return json_response(
        BatchResponse(
            inletId=connection.id,
            batchId=f"{received_ms}:{connection.id}:{len(outcomes)}",
            receivedTimeMs=received_ms,
            responses=responses,
        ),
        status=207,
    )


def _validation_report(rejected: Rejected) -> dict[str, Any] | None:
    """AEP's synchronous-validation report: `report.cause._streamingValidation[]`."""
    if rejected.status != 400:
        return None
    error = {"code": rejected.reason.value, "message": rejected.detail, "title": TITLE[rejected.reason]}
    errors = schema_violations(rejected) or [error]
    return {"message": problem_body(rejected).title, "cause": {"_streamingValidation": errors}}
