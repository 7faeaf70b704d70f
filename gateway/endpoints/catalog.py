"""The Catalog at runtime: datasets as Adobe's Catalog Service API documents them, and inlet's
own API for streaming connections, datastreams and sandboxes (docs/catalog.md).

- `/data/foundation/catalog/dataSets`: `POST` creates (`201 ["@/dataSets/<id>"]`), `GET` lists
  (an object keyed by id; `limit` 1-100, default 20; `start`; `properties`), and
  `/dataSets/{id}`: `GET` (`{"<id>": {...}}`), `PATCH` (`name`, `description`, `tags`,
  `schemaRef`; `200 ["@/dataSets/<id>"]`). Pages:
  https://experienceleague.adobe.com/en/docs/experience-platform/catalog/api/create-dataset,
  .../catalog/api/list-objects, .../catalog/api/filter-data,
  .../catalog/datasets/enable-for-profile.
- `/inlet/connections`, `/inlet/datastreams` (`GET`, `POST`; `/{id}`: `GET`, `DELETE`) with the
  `admin` scope; a connection's token is in the `POST` answer only, and kept hashed.
- `/data/foundation/sandbox-management/sandboxes` (`GET`, `POST`), in the shape of Adobe's
  Sandbox API.

Every write goes to the `inlet_catalog` bucket (every process follows it) and is applied to
this gateway's view at once, so the next request here already sees it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

import msgspec
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import auth, body
from gateway.responses import json_response, problem
from inlet.catalog import store
from inlet.catalog.live import Live
from inlet.config import Config, Connection, DatasetClass, Datastream
from inlet.outcomes import Reason, Rejected
from inlet.schemas import registry as schema_registry
from inlet.schemas.standard import CLASS_OF_DATASET

MAX_BODY = 64 * 1024
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")  # config.Name: also a lake path part
CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"
DEFAULT_LIMIT = 20  # Catalog's page without `limit`
MAX_LIMIT = 100  # Catalog's global limit
DATASET_OF_CLASS = {xdm_class: name for name, xdm_class in CLASS_OF_DATASET.items()}


def routes() -> list[Route]:
    return [
        Route("/data/foundation/catalog/dataSets", datasets, methods=["GET", "POST"]),
        Route("/data/foundation/catalog/dataSets/{dataset_id}", dataset, methods=["GET", "PATCH"]),
        Route("/inlet/connections", connections, methods=["GET", "POST"]),
        Route("/inlet/connections/{item_id}", connection, methods=["GET", "DELETE"]),
        Route("/inlet/datastreams", datastreams, methods=["GET", "POST"]),
        Route("/inlet/datastreams/{item_id}", datastream, methods=["GET", "DELETE"]),
        Route("/data/foundation/sandbox-management/sandboxes", sandboxes, methods=["GET", "POST"]),
    ]


# Request bodies --------------------------------------------------------------------------------

class SchemaRef(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    contentType: str = CONTENT_TYPE


class InletDataset(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """inlet's extension of a dataset: a readable id, and the class when there is no schema."""

    id: str = ""
    xdm_class: DatasetClass | None = msgspec.field(name="class", default=None)
    eventTtlDays: float = 0


class NewDataset(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """AEP's create body. Unknown fields are refused (a misspelt one would be silently lost);
    `fileDescription` is accepted and not used: inlet's lake format is its own."""

    name: str
    description: str = ""
    schemaRef: SchemaRef | None = None
    tags: dict[str, list[str]] = {}
    fileDescription: dict[str, Any] = {}
    inlet: InletDataset | None = None


class DatasetPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """AEP's PATCH: the top-level fields given replace the stored ones (`tags` as a whole, so
    send the tags to keep along with the ones to change, as Adobe's page says)."""

    name: str | None = None
    description: str | None = None
    schemaRef: SchemaRef | None = None
    tags: dict[str, list[str]] | None = None


class NewConnection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str = ""
    name: str = ""
    authenticated: bool = True
    datasets: list[str] = []
    rateLimit: float = 0


class NewDatastream(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str = ""
    name: str = ""
    dataset: str
    origins: list[str] = []
    rateLimit: float = 0


class NewSandbox(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    title: str = ""
    type: Literal["development", "production"] = "development"


# Shared -----------------------------------------------------------------------------------------

def _sandbox(request: Request) -> str:
    return request.headers.get("x-sandbox-name", "prod")


def _state(request: Request) -> tuple[Config, KeyValue, Live]:
    state = request.app.state
    return state.config, state.catalog, state.catalog_live


def _convert(raw: Any, kind: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise Rejected(Reason.invalid_message, f"{what}: {exc}") from None


def _check_name(value: str, what: str) -> str:
    if not NAME.fullmatch(value):
        raise Rejected(Reason.invalid_message,
                       f"{what} {value!r}: 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return value


async def _create(kv: KeyValue, live: Live, key: str, entry: store.Entry, what: str) -> None:
    """Store a new entry; one that exists already (in the bucket) is refused."""
    try:
        await kv.create(key, store.encode(entry))
    except KeyWrongLastSequenceError:
        raise Rejected(Reason.invalid_parameter, f"{what} exists already") from None
    live.put_local(key, entry)


def _require_sandbox(live: Live, sandbox: str) -> None:
    if sandbox not in live.sandboxes():
        raise Rejected(Reason.not_found, f"no sandbox {sandbox!r}; create it first "
                                         "(POST /data/foundation/sandbox-management/sandboxes)")


# Datasets ---------------------------------------------------------------------------------------

def shown_dataset(config: Config, entry: store.StoredDataset) -> dict[str, Any]:
    """A dataset as Catalog shows it, with inlet's own fields under `inlet`."""
    return {
        "name": entry.name or entry.id,
        "description": entry.description,
        "imsOrg": config.org,
        "sandboxId": entry.sandbox,
        "tags": entry.tags,
        "version": f"1.0.{entry.version - 1}",
        "created": entry.created,
        "updated": entry.updated,
        "createdClient": "inlet",
        "files": f"@/dataSetFiles?dataSetId={entry.id}",
        "schemaRef": {"id": entry.schema, "contentType": CONTENT_TYPE} if entry.schema else None,
        "inlet": {"class": entry.xdm_class, "eventTtlDays": entry.event_ttl_days, "origin": entry.origin,
                  "profileEnabled": entry.profile},
    }


def _schema_class(config: Config, sandbox: str, ref: SchemaRef) -> tuple[str, DatasetClass]:
    """The schema's `$id` and the dataset class its XDM class makes (400 if neither exists)."""
    registry = schema_registry.registry_for(config)
    schema = registry.find(sandbox, "schemas", ref.id)
    if schema is None:
        raise Rejected(Reason.invalid_message, f"schemaRef.id {ref.id!r} is not a schema of sandbox {sandbox!r}")
    class_id = registry.resolve(sandbox, schema).get("meta:class")
    found = DATASET_OF_CLASS.get(str(class_id))
    if found is None:
        raise Rejected(Reason.invalid_message, f"schema {ref.id!r} is of class {class_id!r}; a dataset holds one "
                                               f"of {', '.join(sorted(DATASET_OF_CLASS))}")
    return str(schema["$id"]), found  # type: ignore[return-value]


def _datasets_of(live: Live, sandbox: str) -> list[store.StoredDataset]:
    found = [e for e in live.stored() if isinstance(e, store.StoredDataset) and e.sandbox == sandbox]
    return sorted(found, key=lambda e: (e.created, e.id))


def _find_dataset(live: Live, sandbox: str, dataset_id: str) -> store.StoredDataset:
    entry = live.entries.get(store.dataset_key(sandbox, dataset_id))
    if not isinstance(entry, store.StoredDataset):
        raise Rejected(Reason.not_found, f"no dataset {dataset_id!r} in sandbox {sandbox!r}")
    return entry


async def datasets(request: Request) -> Response:
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        config, kv, live = _state(request)
        sandbox = _sandbox(request)
        if request.method == "GET":
            return _list_datasets(request, config, live, sandbox)
        new: NewDataset = _convert(await body.read_json(request, MAX_BODY), NewDataset, "dataset")
        _require_sandbox(live, sandbox)
        extension = new.inlet or InletDataset()
        dataset_id = _check_name(extension.id, "inlet.id") if extension.id else uuid.uuid4().hex[:24]
        if new.schemaRef is not None:
            schema, xdm_class = _schema_class(config, sandbox, new.schemaRef)
            if extension.xdm_class is not None and extension.xdm_class != xdm_class:
                raise Rejected(Reason.invalid_message, f"inlet.class {extension.xdm_class!r} is not the schema's "
                                                       f"class ({xdm_class!r})")
        else:
            schema, xdm_class = "", extension.xdm_class or "experienceevent"
        if extension.eventTtlDays < 0:
            raise Rejected(Reason.invalid_message, "inlet.eventTtlDays cannot be negative")
        at = store.now_ms()
        # New datasets are not enabled for Profile until someone enables them (their tags).
        entry = store.StoredDataset(id=dataset_id, sandbox=sandbox, name=new.name, description=new.description,
                                    xdm_class=xdm_class, schema=schema, tags=new.tags,
                                    event_ttl_days=extension.eventTtlDays, created=at, updated=at)
        await _create(kv, live, store.dataset_key(sandbox, dataset_id), entry, f"dataset {dataset_id!r}")
        return json_response([f"@/dataSets/{dataset_id}"], 201)
    except Rejected as rejected:
        return problem(rejected)


def _list_datasets(request: Request, config: Config, live: Live, sandbox: str) -> Response:
    params = request.query_params
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
        start = int(params.get("start", 0))
    except ValueError:
        raise Rejected(Reason.invalid_parameter, "limit and start must be numbers") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise Rejected(Reason.invalid_parameter, f"limit must be between 1 and {MAX_LIMIT}")
    if start < 0:
        raise Rejected(Reason.invalid_parameter, "start cannot be negative")
    wanted = [p.strip() for p in params.get("properties", "").split(",") if p.strip()]
    found = _datasets_of(live, sandbox)
    if "name" in params:
        found = [e for e in found if (e.name or e.id) == params["name"]]
    out: dict[str, dict[str, Any]] = {}
    for entry in found[start:start + limit]:
        shown = shown_dataset(config, entry)
        out[entry.id] = {k: v for k, v in shown.items() if k in wanted} if wanted else shown
    return json_response(out)


async def dataset(request: Request) -> Response:
    try:
        auth.authorize(request, "profile:read" if request.method == "GET" else "admin")
        config, kv, live = _state(request)
        sandbox, dataset_id = _sandbox(request), request.path_params["dataset_id"]
        key = store.dataset_key(sandbox, dataset_id)
        if request.method == "GET":
            return json_response({dataset_id: shown_dataset(config, _find_dataset(live, sandbox, dataset_id))})
        change: DatasetPatch = _convert(await body.read_json(request, MAX_BODY), DatasetPatch, "dataset patch")
        for _ in range(5):  # optimistic: a concurrent write makes us read again
            try:
                stored = await kv.get(key)
            except KeyNotFoundError:
                raise Rejected(Reason.not_found, f"no dataset {dataset_id!r} in sandbox {sandbox!r}") from None
            if not stored.value:
                raise Rejected(Reason.not_found, f"no dataset {dataset_id!r} in sandbox {sandbox!r}")
            entry = store.DECODERS["dataset"].decode(stored.value)
            assert isinstance(entry, store.StoredDataset)
            updated = _patched(config, entry, change)
            if updated is entry:
                return json_response([f"@/dataSets/{dataset_id}"])  # nothing changes: nothing stored
            try:
                await kv.update(key, store.encode(updated), last=stored.revision)
            except KeyWrongLastSequenceError:
                continue
            live.put_local(key, updated)
            if change.schemaRef is not None:
                await _drop_schema_binding(request, sandbox, dataset_id)
            return json_response([f"@/dataSets/{dataset_id}"])
        raise Rejected(Reason.unavailable, "the dataset kept changing under this update; try again")
    except Rejected as rejected:
        return problem(rejected)


def _patched(config: Config, entry: store.StoredDataset, change: DatasetPatch) -> store.StoredDataset:
    fields: dict[str, Any] = {}
    if change.name is not None:
        fields["name"] = change.name
    if change.description is not None:
        fields["description"] = change.description
    if change.tags is not None:
        fields["tags"] = change.tags
    if change.schemaRef is not None:
        schema, xdm_class = _schema_class(config, entry.sandbox, change.schemaRef)
        if xdm_class != entry.xdm_class:
            raise Rejected(Reason.invalid_message, f"schema {schema!r} is of class {CLASS_OF_DATASET[xdm_class]!r}; "
                                                   f"dataset {entry.id!r} holds {CLASS_OF_DATASET[entry.xdm_class]!r}")
        fields["schema"] = schema
    if not fields or all(getattr(entry, k) == v for k, v in fields.items()):
        return entry
    return msgspec.structs.replace(entry, **fields, updated=store.now_ms(), version=entry.version + 1)


async def _drop_schema_binding(request: Request, sandbox: str, dataset_id: str) -> None:
    """The dataset's record is now the one place its schema is named: an older binding in the
    Schema Registry's bucket (which would override it) is removed."""
    registry = schema_registry.registry_for(request.app.state.config)
    if registry.tenant_docs.get(sandbox, {}).get("datasets", {}).get(dataset_id) is None:
        return
    await request.app.state.schemas.delete(schema_registry.key(sandbox, "datasets", dataset_id))
    registry.put_local(sandbox, "datasets", dataset_id, None)


# Streaming connections and datastreams -----------------------------------------------------------

def _shown_connection(entry: store.StoredConnection | None, configured: Connection | None) -> dict[str, Any]:
    """Never a token nor its hash: a token is shown once, in the answer that creates it."""
    if entry is not None or configured is None:
        assert entry is not None
        return {"id": entry.id, "name": entry.name, "sandbox": entry.sandbox, "authenticated": entry.authenticated,
                "datasets": entry.datasets, "rateLimit": entry.rate_limit, "created": entry.created,
                "origin": "api", "inletUrl": f"/collection/{entry.id}"}
    c = configured
    return {"id": c.id, "name": c.id, "sandbox": c.sandbox, "authenticated": c.authenticated,
            "datasets": c.datasets, "rateLimit": c.rate_limit, "origin": "config", "inletUrl": f"/collection/{c.id}"}


def _shown_datastream(entry: store.StoredDatastream | None, configured: Datastream | None) -> dict[str, Any]:
    if entry is not None or configured is None:
        assert entry is not None
        return {"id": entry.id, "name": entry.name, "sandbox": entry.sandbox, "dataset": entry.dataset,
                "origins": entry.origins, "rateLimit": entry.rate_limit, "created": entry.created, "origin": "api"}
    s = configured
    return {"id": s.id, "name": s.id, "sandbox": s.sandbox, "dataset": s.dataset, "origins": s.origins,
            "rateLimit": s.rate_limit, "origin": "config"}


def _admin(request: Request) -> None:
    auth.authorize(request, "admin")


async def connections(request: Request) -> Response:
    try:
        _admin(request)
        config, kv, live = _state(request)
        sandbox = _sandbox(request)
        if request.method == "GET":
            return json_response({"connections": [
                _shown_connection(_stored(live, store.connection_key(c.id), store.StoredConnection), c)
                for c in config.connections if c.sandbox == sandbox]})
        new: NewConnection = _convert(await body.read_json(request, MAX_BODY), NewConnection, "connection")
        _require_sandbox(live, sandbox)
        connection_id = _check_name(new.id, "id") if new.id else str(uuid.uuid4())
        if config.connection(connection_id) is not None:
            raise Rejected(Reason.invalid_parameter, f"connection {connection_id!r} exists already")
        for name in new.datasets:
            if config.dataset(sandbox, name) is None:
                raise Rejected(Reason.invalid_message, f"datasets: no dataset {name!r} in sandbox {sandbox!r}")
        if new.rateLimit < 0:
            raise Rejected(Reason.invalid_message, "rateLimit cannot be negative")
        token = store.new_token() if new.authenticated else ""
        entry = store.StoredConnection(id=connection_id, name=new.name or connection_id, sandbox=sandbox,
                                       authenticated=new.authenticated,
                                       token_hashes=[store.token_hash(token)] if token else [],
                                       datasets=new.datasets, rate_limit=new.rateLimit, created=store.now_ms())
        await _create(kv, live, store.connection_key(connection_id), entry, f"connection {connection_id!r}")
        shown = _shown_connection(entry, None)
        if token:
            shown["token"] = token  # the only time it is ever shown
        return json_response(shown, 201)
    except Rejected as rejected:
        return problem(rejected)


async def connection(request: Request) -> Response:
    try:
        _admin(request)
        config, kv, live = _state(request)
        item_id, key = request.path_params["item_id"], store.connection_key(request.path_params["item_id"])
        found = config.connection(item_id)
        if found is None or found.sandbox != _sandbox(request):
            raise Rejected(Reason.not_found, f"no streaming connection {item_id!r} in sandbox {_sandbox(request)!r}")
        entry = _stored(live, key, store.StoredConnection)
        if request.method == "GET":
            return json_response(_shown_connection(entry, found))
        if entry is None or any(c.id == item_id for c in live.file_connections):
            raise Rejected(Reason.forbidden, f"connection {item_id!r} is defined in the config file; remove it there")
        await _remove(kv, live, key)
        return Response(status_code=204)
    except Rejected as rejected:
        return problem(rejected)


async def datastreams(request: Request) -> Response:
    try:
        _admin(request)
        config, kv, live = _state(request)
        sandbox = _sandbox(request)
        if request.method == "GET":
            return json_response({"datastreams": [
                _shown_datastream(_stored(live, store.datastream_key(s.id), store.StoredDatastream), s)
                for s in config.datastreams if s.sandbox == sandbox]})
        new: NewDatastream = _convert(await body.read_json(request, MAX_BODY), NewDatastream, "datastream")
        _require_sandbox(live, sandbox)
        datastream_id = _check_name(new.id, "id") if new.id else str(uuid.uuid4())
        if config.datastream(datastream_id) is not None:
            raise Rejected(Reason.invalid_parameter, f"datastream {datastream_id!r} exists already")
        target = config.dataset(sandbox, new.dataset)
        if target is None:
            raise Rejected(Reason.invalid_message, f"dataset: no dataset {new.dataset!r} in sandbox {sandbox!r}")
        if target.xdm_class != "experienceevent":
            raise Rejected(Reason.invalid_message, f"dataset: {new.dataset!r} is not an experienceevent dataset")
        if new.rateLimit < 0:
            raise Rejected(Reason.invalid_message, "rateLimit cannot be negative")
        entry = store.StoredDatastream(id=datastream_id, name=new.name or datastream_id, sandbox=sandbox,
                                       dataset=new.dataset, origins=new.origins, rate_limit=new.rateLimit,
                                       created=store.now_ms())
        await _create(kv, live, store.datastream_key(datastream_id), entry, f"datastream {datastream_id!r}")
        return json_response(_shown_datastream(entry, None), 201)
    except Rejected as rejected:
        return problem(rejected)


async def datastream(request: Request) -> Response:
    try:
        _admin(request)
        config, kv, live = _state(request)
        item_id, key = request.path_params["item_id"], store.datastream_key(request.path_params["item_id"])
        found = config.datastream(item_id)
        if found is None or found.sandbox != _sandbox(request):
            raise Rejected(Reason.not_found, f"no datastream {item_id!r} in sandbox {_sandbox(request)!r}")
        entry = _stored(live, key, store.StoredDatastream)
        if request.method == "GET":
            return json_response(_shown_datastream(entry, found))
        if entry is None or any(s.id == item_id for s in live.file_datastreams):
            raise Rejected(Reason.forbidden, f"datastream {item_id!r} is defined in the config file; remove it there")
        await _remove(kv, live, key)
        return Response(status_code=204)
    except Rejected as rejected:
        return problem(rejected)


def _stored(live: Live, key: str, kind: type[Any]) -> Any:
    entry = live.entries.get(key)
    return entry if isinstance(entry, kind) else None


async def _remove(kv: KeyValue, live: Live, key: str) -> None:
    await kv.delete(key)
    live.put_local(key, None)


# Sandboxes ----------------------------------------------------------------------------------------

def _shown_sandbox(entry: store.StoredSandbox) -> dict[str, Any]:
    """Adobe's sandbox object (Sandbox API), with the fields inlet has."""
    return {"name": entry.name, "title": entry.title or entry.name, "state": "active", "type": entry.type,
            "region": "local", "isDefault": entry.name == "prod", "createdDate": entry.created or None}


async def sandboxes(request: Request) -> Response:
    try:
        authorizer: auth.Authorizer = request.app.state.authorizer
        if request.method == "GET":
            token = authorizer.check(request, "profile:read", _sandbox(request))
            _, _, live = _state(request)
            found = [s for s in live.sandboxes().values() if not token.sandboxes or s.name in token.sandboxes]
            return json_response({"sandboxes": [_shown_sandbox(s) for s in found],
                                  "_page": {"limit": len(found), "count": len(found)}})
        new: NewSandbox = _convert(await body.read_json(request, MAX_BODY), NewSandbox, "sandbox")
        authorizer.check(request, "admin", new.name)
        _check_name(new.name, "name")
        _, kv, live = _state(request)
        if new.name in live.sandboxes():
            raise Rejected(Reason.invalid_parameter, f"sandbox {new.name!r} exists already")
        entry = store.StoredSandbox(name=new.name, title=new.title or new.name, type=new.type, created=store.now_ms())
        await _create(kv, live, store.sandbox_key(new.name), entry, f"sandbox {new.name!r}")
        return json_response(_shown_sandbox(entry), 201)
    except Rejected as rejected:
        return problem(rejected)
