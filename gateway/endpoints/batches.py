"""Batch ingestion, in the shape of Adobe's Batch Ingestion API and Catalog batches
(https://experienceleague.adobe.com/docs/experience-platform/ingestion/batch/api-overview.html):

    POST  /data/foundation/import/batches                                  create (201)
    PUT   /data/foundation/import/batches/{id}/datasets/{ds}/files/{name}  upload a file (200)
    POST  …/files/{name}?action=INITIALIZE                                 start a large file (201)
    PATCH …/files/{name}  + Content-Range: bytes a-b/total                 one chunk of it (200)
    POST  …/files/{name}?action=COMPLETE                                   finish it (201)
    POST  /data/foundation/import/batches/{id}?action=COMPLETE             complete the batch (200)
    POST  /data/foundation/import/batches/{id}?action=ABORT                abandon it (200)
    GET   /data/foundation/catalog/batches/{id}                            status, metrics, errors

Bodies stream into JetStream (`inlet.batches.files`) as they arrive; the batch document lives
in the `inlet_batches` bucket (`inlet.batches.state`); completing queues a job for the loader
in the lake workers (`inlet.batches.jobs`). docs/batches.md has the whole design.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from nats.js.kv import KeyValue
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import auth, body
from gateway.responses import json_response, problem
from inlet.batches import files, jobs
from inlet.batches import state as batch_state
from inlet.batches.state import BatchState, FileState, InputFormat, Part
from inlet.config import Config
from inlet.dataprep.expression import ExpressionError
from inlet.dataprep.mapping import Mapper, MappingSet
from inlet.outcomes import Reason, Rejected

MAX_UPLOAD_BYTES = 256 * 1024 * 1024  # per request, as Adobe's small-file limit; larger files go in chunks
MAX_FILES = 1500  # per batch, as Adobe
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class CreateBatch(msgspec.Struct, kw_only=True):
    datasetId: str
    inputFormat: InputFormat = msgspec.field(default_factory=InputFormat)
    partialIngestionPercent: float = 0
    enableErrorDiagnostics: bool = False
    tags: dict[str, Any] = {}
    # inlet: a Data Prep mapping set for the batch's rows (docs/batches.md).
    mapping: MappingSet | None = msgspec.field(default=None, name="inlet:mapping")


_decode_create = msgspec.json.Decoder(CreateBatch).decode


def routes() -> list[Route]:
    base = "/data/foundation/import/batches"
    return [
        Route(base, create, methods=["POST"]),
        Route(base + "/{batch_id}", action, methods=["POST"]),
        Route(base + "/{batch_id}/datasets/{dataset_id}/files/{file_name:path}", upload,
              methods=["PUT", "PATCH", "POST"]),
        Route("/data/foundation/catalog/batches/{batch_id}", status, methods=["GET"]),
    ]


async def _bucket(request: Request) -> KeyValue:
    """The batch bucket and streams, declared on first use (a gateway that never sees a batch
    never creates them)."""
    state = request.app.state
    kv: KeyValue | None = getattr(state, "batches_kv", None)
    if kv is None:
        replicas = state.config.nats.replicas
        kv = await batch_state.open_bucket(state.js, replicas)
        await files.ensure_stream(state.js, replicas)
        await jobs.ensure_stream(state.js, replicas)
        state.batches_kv = kv
    return kv


def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


async def _batch(request: Request, kv: KeyValue) -> BatchState:
    batch_id = request.path_params["batch_id"]
    found = await batch_state.get(kv, batch_id) if re.fullmatch(r"[0-9a-f]{32}", batch_id) else None
    if found is None or found[0].sandbox != _sandbox(request):
        raise Rejected(Reason.not_found, f"no batch {batch_id!r} in sandbox {_sandbox(request)!r}")
    return found[0]


def view(s: BatchState) -> dict[str, Any]:
    """A batch as Catalog shows it."""
    out: dict[str, Any] = {
        "id": s.id, "imsOrg": s.org, "status": s.status, "created": s.created, "updated": s.updated,
        "relatedObjects": [{"type": "dataSet", "id": s.dataset}],
        "inputFormat": _input_format(s.inputFormat),
        "metrics": {**msgspec.to_builtins(s.metrics), "inputFileCount": len(s.files)},
        "errors": msgspec.to_builtins(s.errors),
        "sandbox": {"name": s.sandbox},
        "inlet": {"files": [{"name": f.name, "size": f.size, "complete": f.complete} for f in s.files],
                  "lakeFile": s.lake_file, "attempts": s.attempts, "partialIngestionPercent": s.partialIngestionPercent},
    }
    if s.completed:
        out["completed"] = s.completed
    return out


def _input_format(fmt: InputFormat) -> dict[str, Any]:
    if fmt.format != "csv":
        return {"format": fmt.format}
    return {"format": "csv", "delimiter": fmt.delimiter, "quote": fmt.quote, "header": fmt.header}


async def create(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        auth.authorize(request, "admin")
        try:
            wanted = _decode_create(await body.read(request, 1024 * 1024))
        except msgspec.DecodeError as exc:
            raise Rejected(Reason.invalid_message, f"not a batch: {exc}") from None
        sandbox = _sandbox(request)
        if config.dataset(sandbox, wanted.datasetId) is None:
            raise Rejected(Reason.unknown_dataset, f"dataset {wanted.datasetId!r} does not exist in sandbox {sandbox!r}")
        if not 0 <= wanted.partialIngestionPercent <= 100:
            raise Rejected(Reason.invalid_parameter, "partialIngestionPercent must be between 0 and 100")
        if wanted.inputFormat.format == "csv" and len(wanted.inputFormat.delimiter) != 1:
            raise Rejected(Reason.invalid_parameter, "inputFormat.delimiter must be one character")
        if wanted.mapping is not None:
            try:
                Mapper(wanted.mapping)
            except ExpressionError as exc:
                raise Rejected(Reason.invalid_parameter, f"inlet:mapping: {exc}") from None
        now = batch_state.now_ms()
        new = BatchState(id=uuid.uuid4().hex, org=config.org, sandbox=sandbox, dataset=wanted.datasetId,
                         inputFormat=wanted.inputFormat, mapping=wanted.mapping,
                         partialIngestionPercent=wanted.partialIngestionPercent, created=now, updated=now)
        await batch_state.create(await _bucket(request), new)
    except Rejected as rejected:
        return problem(rejected)
    return json_response({**view(new), "version": "1.0.0", "tags": wanted.tags}, 201)


async def action(request: Request) -> Response:
    """`?action=COMPLETE` (safe to repeat: a completed batch answers 200 again and loads once)
    or `?action=ABORT`."""
    verb = request.query_params.get("action", "").upper()
    try:
        auth.authorize(request, "admin")
        kv = await _bucket(request)
        current = await _batch(request, kv)
        if verb == "COMPLETE":
            await _complete(request, kv, current)
        elif verb == "ABORT":
            await _abort(request, kv, current)
        else:
            raise Rejected(Reason.invalid_parameter, "action must be COMPLETE or ABORT")
    except Rejected as rejected:
        return problem(rejected)
    return Response(status_code=200)


async def _complete(request: Request, kv: KeyValue, current: BatchState) -> None:
    if current.status in ("failed", "abandoned"):
        raise Rejected(Reason.invalid_parameter, f"batch {current.id} is {current.status}")
    if current.status == "loading":
        def complete(s: BatchState) -> None:
            if s.status != "loading":
                return
            if not s.files:
                raise Rejected(Reason.invalid_parameter, "the batch has no files")
            open_files = [f.name for f in s.files if not f.complete]
            if open_files:
                raise Rejected(Reason.invalid_parameter, f"large files not completed: {', '.join(open_files[:5])}")
            s.status = "staged"
            s.metrics.inputByteSize = sum(f.size for f in s.files)
        current = await batch_state.update(kv, current.id, complete)
    if current.status == "staged":  # queued again on a retry: the job id makes it one job
        await jobs.enqueue(request.app.state.js, current.id)


async def _abort(request: Request, kv: KeyValue, current: BatchState) -> None:
    if current.status not in ("loading", "staged"):
        raise Rejected(Reason.invalid_parameter, f"batch {current.id} is {current.status}; it can no longer be aborted")

    def abandon(s: BatchState) -> None:
        s.status = "abandoned"
    await batch_state.update(kv, current.id, abandon)
    await files.purge(request.app.state.js, current.id)


async def _stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(Reason.request_too_large, f"the body exceeds {limit} bytes")
        yield chunk


async def upload(request: Request) -> Response:
    method = request.method
    verb = request.query_params.get("action", "").upper()
    try:
        auth.authorize(request, "admin")
        kv = await _bucket(request)
        current = await _batch(request, kv)
        dataset_id = request.path_params["dataset_id"]
        name = request.path_params["file_name"]
        if dataset_id != current.dataset:
            raise Rejected(Reason.invalid_parameter, f"batch {current.id} is for dataset {current.dataset!r}")
        if not name or len(name) > 1024 or "\x00" in name:
            raise Rejected(Reason.invalid_parameter, "the file name must be 1 to 1,024 characters")
        if current.status != "loading":
            raise Rejected(Reason.invalid_parameter, f"batch {current.id} is {current.status}; files can no longer be added")
        key = files.file_key(name)
        if method == "PUT":
            return await _put(request, kv, current, name, key)
        if method == "PATCH":
            return await _patch(request, kv, current, name, key)
        if verb == "INITIALIZE":
            return await _initialize(kv, current, name, key)
        if verb == "COMPLETE":
            return await _complete_file(kv, current, name)
        raise Rejected(Reason.invalid_parameter, "POST on a file takes action=INITIALIZE or action=COMPLETE")
    except Rejected as rejected:
        return problem(rejected)
    except ClientDisconnect:
        return Response(status_code=400)  # nobody reads it; the upload is not recorded


def _add_file(s: BatchState, file: FileState) -> None:
    s.files = [f for f in s.files if f.name != file.name] + [file]
    if len(s.files) > MAX_FILES:
        raise Rejected(Reason.invalid_parameter, f"a batch holds at most {MAX_FILES} files")


async def _put(request: Request, kv: KeyValue, current: BatchState, name: str, key: str) -> Response:
    upload_id = uuid.uuid4().hex[:16]
    size = await files.store(request.app.state.js, current.id, key, upload_id, 0, _stream(request, MAX_UPLOAD_BYTES))

    def record(s: BatchState) -> None:
        _still_loading(s)
        _add_file(s, FileState(name=name, key=key, parts=[Part(0, size, upload_id)], size=size, complete=True))
    await batch_state.update(kv, current.id, record)
    return Response(status_code=200)


async def _initialize(kv: KeyValue, current: BatchState, name: str, key: str) -> Response:
    def record(s: BatchState) -> None:
        _still_loading(s)
        _add_file(s, FileState(name=name, key=key, large=True))
    await batch_state.update(kv, current.id, record)
    return Response(status_code=201)


async def _patch(request: Request, kv: KeyValue, current: BatchState, name: str, key: str) -> Response:
    file = current.file(name)
    if file is None or not file.large:
        raise Rejected(Reason.invalid_parameter, f"initialize {name!r} (POST ?action=INITIALIZE) before sending chunks")
    if file.complete:
        raise Rejected(Reason.invalid_parameter, f"{name!r} is complete")
    match = _RANGE.match(request.headers.get("content-range", ""))
    if match is None:
        raise Rejected(Reason.invalid_parameter, "a chunk needs Content-Range: bytes <first>-<last>/<total or *>")
    first, last = int(match.group(1)), int(match.group(2))
    total = int(match.group(3)) if match.group(3) != "*" else -1
    if total >= 0 and last >= total:
        raise Rejected(Reason.invalid_parameter, "Content-Range: the last byte is past the total")
    if last < first:
        raise Rejected(Reason.invalid_parameter, "Content-Range: the last byte precedes the first")
    upload_id = uuid.uuid4().hex[:16]
    size = await files.store(request.app.state.js, current.id, key, upload_id, first,
                             _stream(request, min(MAX_UPLOAD_BYTES, last - first + 1)))
    if size != last - first + 1:
        raise Rejected(Reason.invalid_parameter, f"Content-Range names {last - first + 1} bytes; the body has {size}")

    def record(s: BatchState) -> None:
        _still_loading(s)
        found = s.file(name)
        if found is None or found.complete:
            raise Rejected(Reason.invalid_parameter, f"{name!r} is not an open large file")
        if total >= 0:
            if found.size >= 0 and found.size != total:
                raise Rejected(Reason.invalid_parameter, f"Content-Range: {name!r} was said to be {found.size} bytes")
            found.size = total  # the declared size, which COMPLETE checks the chunks against
        # A retried chunk (same range) replaces the earlier one.
        found.parts = [p for p in found.parts if (p.start, p.end) != (first, last + 1)] + [Part(first, last + 1, upload_id)]
    await batch_state.update(kv, current.id, record)
    return Response(status_code=200)


async def _complete_file(kv: KeyValue, current: BatchState, name: str) -> Response:
    def record(s: BatchState) -> None:
        _still_loading(s)
        found = s.file(name)
        if found is None or not found.large:
            raise Rejected(Reason.invalid_parameter, f"{name!r} was not initialized as a large file")
        if found.complete:
            return
        end = 0
        for part in sorted(found.parts, key=lambda p: p.start):
            if part.start != end:
                what = "missing" if part.start > end else "overlapping"
                raise Rejected(Reason.invalid_parameter, f"{name!r}: chunks are {what} at byte {min(end, part.start)}")
            end = part.end
        if end == 0:
            raise Rejected(Reason.invalid_parameter, f"{name!r} has no chunks")
        if found.size >= 0 and end != found.size:
            raise Rejected(Reason.invalid_parameter, f"{name!r}: chunks are missing at byte {end} of {found.size}")
        found.size, found.complete = end, True
    await batch_state.update(kv, current.id, record)
    return Response(status_code=201)


def _still_loading(s: BatchState) -> None:
    if s.status != "loading":
        raise Rejected(Reason.invalid_parameter, f"batch {s.id} is {s.status}; files can no longer be added")


async def status(request: Request) -> Response:
    try:
        auth.authorize(request, "profile:read")
        current = await _batch(request, await _bucket(request))
    except Rejected as rejected:
        return problem(rejected)
    return json_response({current.id: view(current)})
