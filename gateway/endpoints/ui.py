"""The profile workspace at `/ui/`: static files, and the page's profile and live calls.

The page is plain HTML and the project's own ES modules (`app.js` and one `view-*.js` per
view, flat in gateway/ui/, no build step), served with a Content-Security-
Policy that lets it talk to this gateway only. It asks for the bearer token once and keeps it
in `sessionStorage`; every call sends it in the `Authorization` header (never in a URL), which
is why live updates are Server-Sent Events read with `fetch` rather than `EventSource`.

The workspace's other read endpoints (lists, preview, upsert, ingestion) are in
`gateway/endpoints/workspace.py`.

- `GET /ui/api/profile` (`mergePolicyId` optional): the merged profile with each attribute's dataset and write time, the
  identity graph with the message and time behind each link, and the business accounts the
  person belongs to, in one answer.
- `GET /ui/api/live?profileId=…`: an SSE stream that says `change` whenever the profile
  worker commits a change to that profile (`inlet.notify.<sandbox>.<profile id>`).
- `GET /ui/api/overview`: for the request's sandbox (`x-sandbox-name`, default `prod`), the
  messages the stream holds for it and the age of the newest lake file of each of its datasets;
  and, only for a token that may use every sandbox, the deployment-wide figures no sandbox owns
  (requests rejected by reason, most of them before any sandbox is known, and consumer lag). A
  token bound to some sandboxes never sees another sandbox's activity, not even as a total.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from nats.js.errors import NoKeysError
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse

from gateway import auth
from gateway.endpoints.profile import _ask, _identity, _iso, _sandbox
from gateway.responses import json_response, problem
from inlet import lookups, subjects
from inlet.config import Config
from inlet.outcomes import Reason, Rejected
from inlet.telemetry import EVENTS_REJECTED, metrics_bucket

STATIC = Path(__file__).resolve().parent.parent / "ui"
# The page and its ES modules (one per view, flat in gateway/ui/: no build step).
MEDIA = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
FILES = {"": ("index.html", "text/html")} | {
    f.name: (f.name, MEDIA[f.suffix]) for f in STATIC.iterdir() if f.suffix in MEDIA and f.name != "index.html"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEARTBEAT = 15.0
MAX_ACCOUNTS = 5  # linked accounts shown on one profile


async def page(request: Request) -> Response:
    name = request.path_params.get("name", "")
    if name not in FILES:
        return Response(status_code=404)
    filename, media = FILES[name]
    return FileResponse(STATIC / filename, media_type=media,
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"})


async def profile(request: Request) -> Response:
    config: Config = request.app.state.config
    try:
        auth.authorize(request, "profile:read")
        identity, profile_id = _identity(request, "entityId", "entityIdNS")
        sandbox = _sandbox(request)
        view = await _ask(request, lookups.ProfileLookup(org=config.org, sandbox=sandbox, identity=identity,
                                                         profile_id=profile_id,
                                                         merge_policy=request.query_params.get("mergePolicyId") or None))
        assert isinstance(view, lookups.ProfileView)
        graph = await _ask(request, lookups.GraphLookup(org=config.org, sandbox=sandbox, profile_id=view.profile_id))
        assert isinstance(graph, lookups.GraphView)
        accounts = [await _ask(request, lookups.AccountLookup(org=config.org, sandbox=sandbox, account_key=key, limit=1))
                    for key in view.accounts[:MAX_ACCOUNTS]]
    except Rejected as rejected:
        return problem(rejected)
    return json_response({
        "profileId": view.profile_id, "entity": view.entity, "sources": view.sources,
        "provenance": {path: {"dataset": d, "writtenAt": _iso(ts)} for path, (d, ts) in view.provenance.items()},
        "identities": graph.members, "links": graph.links, "lastModifiedAt": _iso(view.last_modified_ms),
        "mergePolicy": view.merge_policy,
        "accounts": [{"accountKey": a.account_key, "entity": a.entity, "people": a.people_total}
                     for a in accounts if isinstance(a, lookups.AccountView)],
    })


async def live(request: Request) -> Response:
    state = request.app.state
    try:
        auth.authorize(request, "profile:read")
        profile_id = request.query_params.get("profileId", "")
        if len(profile_id) != 32 or any(c not in "0123456789abcdef" for c in profile_id):
            raise Rejected(Reason.invalid_parameter, "profileId must be a profile id")
    except Rejected as rejected:
        return problem(rejected)
    changes: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)

    async def on_change(msg: object) -> None:
        if not changes.full():
            changes.put_nowait(b"event: change\ndata: {}\n\n")

    subscription = await state.nc.subscribe(subjects.notify(_sandbox(request), profile_id), cb=on_change)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b": connected\n\n"
            while True:
                try:
                    yield await asyncio.wait_for(changes.get(), HEARTBEAT)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
        finally:
            await subscription.unsubscribe()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def overview(request: Request) -> Response:
    state = request.app.state
    config: Config = state.config
    sandbox = _sandbox(request)
    try:
        token = state.authorizer.check(request, "profile:read", sandbox)
    except Rejected as refused:
        return problem(refused)
    everywhere = not token.sandboxes
    # Lake files are labelled by dataset id alone; an id that another sandbox uses too would
    # show that sandbox's activity, so only ids unique to this sandbox are shown.
    elsewhere = {d.id for d in config.datasets if d.sandbox != sandbox}
    datasets = {d.id for d in config.datasets if d.sandbox == sandbox} - elsewhere
    stored: int | None = 0
    lag: dict[str, int] = {}
    freshness: dict[str, float] = {}
    try:
        if any(d.sandbox == sandbox for d in config.datasets):  # else nothing can be stored for it
            info = await state.js.stream_info(config.nats.stream, subjects_filter=f"inlet.{sandbox}.>")
            stored = sum((info.state.subjects or {}).values())
        if everywhere:
            for consumer in await state.js.consumers_info(config.nats.stream):
                lag[consumer.name] = (consumer.num_pending or 0) + (consumer.num_ack_pending or 0)
        bucket = await metrics_bucket(state.js)
        for key in await bucket.keys():
            entry = await bucket.get(key)
            for family in text_string_to_metric_families((entry.value or b"").decode()):
                if family.name == "inlet_lake_committed_timestamp_seconds":
                    for sample in family.samples:
                        dataset = sample.labels["dataset"]
                        if dataset in datasets:
                            freshness[dataset] = max(freshness.get(dataset, 0.0), sample.value)
    except NoKeysError:
        pass
    except Exception:  # the bus is away: say so rather than show zeros
        stored = None
        lag = {"unavailable": -1}
    rejected: dict[str, float] = {}
    for metric in EVENTS_REJECTED.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                rejected[sample.labels["reason"]] = sample.value
    now = time.time()
    return json_response({
        "timeMs": int(now * 1000), "sandbox": sandbox, "accepted": stored,
        "rejected": rejected if everywhere else None, "consumerLag": lag if everywhere else None,
        "lakeAgeSeconds": {d: round(now - t, 1) for d, t in sorted(freshness.items())},
    })
