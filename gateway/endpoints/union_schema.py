"""The union schema: `GET /data/core/ups/config/unionSchema?class=profile|experienceevent|account`.

Every field observed in the profile-enabled datasets of a class (the profile worker records
each new leaf path and type as data arrives), with its JSON types and the datasets that
contribute it; `datasets` lists the class's profile-enabled datasets in the sandbox.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway import auth
from gateway.endpoints.profile import _ask, _sandbox
from gateway.responses import json_response, problem
from inlet import lookups
from inlet.config import Config, Dataset
from inlet.schemas.registry import registry_for
from inlet.schemas import union as union_fields
from inlet.outcomes import Reason, Rejected

CLASSES = ("profile", "experienceevent", "account", "account-person")


async def union_schema(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        auth.authorize(request, "profile:read")
        xdm_class = request.query_params.get("class", "")
        if xdm_class not in CLASSES:
            raise Rejected(Reason.invalid_parameter, f"class must be one of {', '.join(CLASSES)}, got {xdm_class!r}")
        sandbox = _sandbox(request)
        answer = await _ask(request, lookups.SchemaLookup(org=config.org, sandbox=sandbox, xdm_class=xdm_class))
    except Rejected as rejected:
        return problem(rejected)
    assert isinstance(answer, lookups.SchemaView)
    enabled = [d for d in config.datasets if d.sandbox == sandbox and d.xdm_class == xdm_class and d.profile]
    fields, schemas = _with_declared(config, sandbox, enabled, answer.fields)
    return json_response({"class": xdm_class, "sandbox": sandbox, "datasets": sorted(d.id for d in enabled),
                          "schemas": schemas, "fields": fields})


def _with_declared(config: Config, sandbox: str, enabled: list[Dataset],
                   observed: list[lookups.SchemaField]) -> tuple[list[lookups.SchemaField], list[str]]:
    """The observed fields merged with those the schemas of the profile-enabled datasets declare
    (docs/schemas.md: union schema): a declared field is in the union before any data has it."""
    registry = registry_for(config)
    merged = {f.path: (set(f.types), set(f.datasets)) for f in observed}
    schemas: set[str] = set()
    for dataset in enabled:
        ref = registry.dataset_schema(dataset)
        schema = registry.find(sandbox, "schemas", ref) if ref else None
        if schema is None:
            continue
        schemas.add(schema["$id"])
        for path, kind in union_fields.declared(registry.resolve(sandbox, schema)):
            types, datasets = merged.setdefault(path, (set(), set()))
            types.add(kind)
            datasets.add(dataset.id)
    fields = [lookups.SchemaField(path=p, types=sorted(t), datasets=sorted(d)) for p, (t, d) in sorted(merged.items())]
    return fields, sorted(schemas)
