"""The gateway's ASGI application: routes, and the NATS connection its lifespan owns.

The app is stateless apart from the NATS connection: any number of gateways can run behind a
balancer. It connects (and declares the streams) before serving, and drains the connection on
shutdown so that acknowledged publishes are never cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import Authorizer
from gateway.body import BodyDeadline
from gateway.endpoints import (
    batches,
    catalog,
    collection,
    computed_attributes,
    edge,
    entities,
    health,
    merge_policies,
    metrics,
    profile,
    schema_registry,
    ui,
    union_schema,
    workspace,
)
from gateway import ingest_rates
from gateway.enrich import ClientAddress
from gateway.limits import RateLimiter
from gateway.observe import Observe
from gateway.publish import Publisher
from gateway.responses import json_response
from gateway.spool import Spool, claim_directory
from inlet import bus, computed_catalog, retention
from inlet.catalog import live as catalog_live
from inlet import merge_policies as mp
from inlet.config import Config
from inlet.schemas import failures as schema_failures
from inlet.schemas import registry as schema_registry_store

log = logging.getLogger("inlet.gateway")


def create_app(config: Config) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nc = await bus.connect(config, name="inlet-gateway")
        js = bus.jetstream(nc, config)
        await bus.ensure_streams(js, config)
        app.state.merge_policies = await mp.open_bucket(js, config.nats.replicas)
        await mp.seed(app.state.merge_policies, config)
        app.state.computed_attributes, app.state.backfill_progress = await computed_catalog.open_buckets(
            js, config.nats.replicas)
        await computed_catalog.seed(app.state.computed_attributes, config)
        app.state.schemas = await schema_registry_store.open_bucket(js, config.nats.replicas)
        await schema_registry_store.seed(app.state.schemas, config, schema_registry_store.registry_for(config))
        schema_watch = await schema_registry_store.follow(app.state.schemas, schema_registry_store.registry_for(config))
        await schema_failures.ensure_stream(js, config.nats.replicas)
        app.state.catalog, app.state.catalog_live = await catalog_live.follow(js, config)
        app.state.nc = nc
        app.state.js = js
        spool = _spool(config)
        app.state.publisher = Publisher(nc, js, config, spool)
        replay = asyncio.create_task(app.state.publisher.replay_forever()) if spool else None
        trim = asyncio.create_task(retention.trim_forever(js, config.nats.stream))
        rates = asyncio.create_task(ingest_rates.push_forever(js))  # the workspace's ingestion chart
        log.info("Gateway connected to %s.", config.nats.url)
        try:
            yield
        finally:
            if replay is not None:
                replay.cancel()
            trim.cancel()
            rates.cancel()
            schema_watch.cancel()
            await app.state.catalog_live.stop()
            await bus.close(nc)

    app = Starlette(
        routes=[
            Route("/collection/{connection_id}", collection.single, methods=["POST"]),
            Route("/collection/batch/{connection_id}", collection.batch, methods=["POST"]),
            Route("/data/core/ups/access/entities", entities.entities, methods=["GET", "POST", "DELETE"]),
            Route("/data/core/ups/access/unlink", profile.unlink, methods=["POST"]),
            Route("/data/core/ups/access/graph", profile.graph, methods=["GET"]),
            *[
                route
                for prefix in ("/data/core/ups/config/mergePolicies", "/config/mergePolicies")
                for route in (
                    Route(prefix, merge_policies.collection, methods=["GET", "POST"]),
                    Route(prefix + "/bulk-get", merge_policies.bulk_get, methods=["POST"]),
                    Route(prefix + "/{policy_id}", merge_policies.item, methods=["GET", "PUT", "PATCH", "DELETE"]),
                )
            ],
            Route("/data/core/ups/config/unionSchema", union_schema.union_schema, methods=["GET"]),
            Route("/data/core/ca/attributes", computed_attributes.collection, methods=["GET", "POST"]),
            Route("/data/core/ca/attributes/{name}", computed_attributes.item,
                  methods=["GET", "PUT", "PATCH", "DELETE"]),
            *catalog.routes(),
            *schema_registry.routes(),
            *batches.routes(),
            Route("/ee/{path:path}", edge.edge, methods=["POST"]),
            Route("/ee/{path:path}", edge.preflight, methods=["OPTIONS"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Route("/metrics", metrics.metrics, methods=["GET"]),
            Route("/ui/api/profile", ui.profile, methods=["GET"]),
            Route("/ui/api/live", ui.live, methods=["GET"]),
            Route("/ui/api/overview", ui.overview, methods=["GET"]),
            Route("/ui/api/context", workspace.context, methods=["GET"]),
            Route("/ui/api/profiles", workspace.profiles, methods=["GET"]),
            Route("/ui/api/accounts", workspace.accounts, methods=["GET"]),
            Route("/ui/api/computed-preview", workspace.preview, methods=["POST"]),
            Route("/ui/api/upsert", workspace.upsert, methods=["POST"]),
            Route("/ui/api/ingestion", workspace.ingestion, methods=["GET"]),
            Route("/ui/", ui.page, methods=["GET"]),
            Route("/ui/{name}", ui.page, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={Exception: _internal_error},
        middleware=[Middleware(Observe), Middleware(BodyDeadline, timeout=config.http.body_read_timeout)],
    )
    app.state.config = config
    app.state.authorizer = Authorizer(config)
    app.state.api_tokens = [app.state.authorizer.tokens[0].token]  # the root token
    app.state.client_address = ClientAddress(config.edge)
    app.state.rate_limiter = RateLimiter()
    return app


def _spool(config: Config) -> Spool | None:
    if not config.spool.enabled:
        return None
    directory = Path(config.spool.directory) if config.spool.directory else (
        config.data_path / "spool" / f"gateway-{config.http.port}"
    )
    if config.http.reuse_port:  # several processes on this port: one spool slot each
        directory = claim_directory(directory)
    return Spool(directory, config.spool.max_bytes, config.spool.max_age)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug must not leak a stack trace or kill the connection: log it, answer 500 JSON."""
    log.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return json_response(
        {"type": "https://inlet.dev/errors/internal", "status": 500, "title": "Internal error",
         "detail": "the gateway failed to handle this request; it has been logged", "code": "internal"},
        500,
    )
