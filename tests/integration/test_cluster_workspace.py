"""The workspace's browse endpoints (`/ui/api/profiles`, `/ui/api/accounts`,
`/ui/api/computed-preview`) with four profile shards on a real 3-node NATS cluster answer
exactly what one shard answers (docs/scaling.md, docs/profile.md "Workspace").

Every shard holds the whole identity graph, the profile index (graph id → last modified) and
the business accounts, but a profile's events and attributes live only on the shards owning
its identities: a list merged from N shards repeats every row N times, and a preview read on
one shard misses the events other shards hold. The layout is started as `test_cluster.py`
starts it (its `Tier` and traffic).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.harness import free_port, wait_for
from tests.integration.test_cluster import (  # noqa: F401  (fixtures used by name)
    ENTITIES,
    Tier,
    _backfilled,
    _ready,
    _caught_up,
    _delete_consumers,
    _spans_shards,
    cluster,
    send,
    snapshot,
    tier,
    traffic,
    universe,
)

# Previewed definitions (the API's own shape), saved too: spend30d is in test_cluster's config,
# the others are created through the API after the traffic (counted by a backfill). Every
# window is longer than the traffic's ten days, so no event leaves one between the two runs.
DEFINITIONS = {
    "spend30d": {"function": "SUM", "field": "commerce.order.priceTotal",
                 "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 30, "unit": "DAYS"}},
    "visits30d": {"function": "COUNT", "duration": {"count": 30, "unit": "DAYS"}},
    "lastOrder30d": {"function": "MOST_RECENT", "field": "commerce.order.priceTotal",
                     "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 30, "unit": "DAYS"}},
}
SAVED = ("visits30d", "lastOrder30d")
LISTS = [{}, {"search": "shop.example"}, {"namespace": "ECID"}, {"dataset": "demo-profiles"},
         {"dataset": "demo-events"}, {"search": "person1", "dataset": "demo-events"}]


def start_gateway(tier: Tier, shards: int, attempts: int = 5) -> httpx.Client:
    """One gateway, started again if it exits during start-up (a freshly created R3 bucket
    still electing its leader fails its seeding), as `inlet up`'s supervisor would."""
    for client in tier.gateways:
        client.close()
    tier.gateways = []
    for _ in range(attempts):
        port = free_port()
        if "gateway-0" in tier.procs:
            tier.stop("gateway-0")
        env = dict(tier.env, INLET_HTTP_PORT=str(port), INLET_PROFILE_SHARDS=str(shards),
                   INLET_DATA_DIR=str(tier.tmp / f"gw-{port}"))
        tier._spawn("gateway-0", ["gateway"], env)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15,
                              headers={"Authorization": f"Bearer {tier.token}"})
        wait_for(lambda: _ready(client) or tier.procs["gateway-0"].poll() is not None, 60, what="gateway ready")
        if tier.procs["gateway-0"].poll() is None:
            tier.gateways.append(client)
            return client
        client.close()
    raise AssertionError(tier.log_text("gateway-0"))


def _pages(client: httpx.Client, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of a profile list, following `next`, seven rows a page."""
    pages: list[dict[str, Any]] = []
    cursor = ""
    while True:
        r = client.get("/ui/api/profiles", params={**params, "limit": "7", **({"after": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = r.json()["next"]
        if not cursor:
            return pages
        assert len(pages) < 100, "paging does not end"


def _computed(client: httpx.Client, ns: str, value: str, name: str) -> Any:
    """The computed attribute's value in the merged profile (None: absent or no profile)."""
    r = client.get(ENTITIES, params={"schema.name": "_xdm.context.profile", "entityId": value, "entityIdNS": ns})
    if r.status_code != 200:
        return None
    (profile,) = r.json().values()
    return profile["entity"].get("computedAttributes", {}).get(name, {}).get("value")


def workspace(client: httpx.Client) -> dict[str, Any]:
    """Every workspace browse answer, checked for duplicates and totals on the way."""
    out: dict[str, Any] = {}
    for params in LISTS:
        pages = _pages(client, params)
        ids = [row["profileId"] for page in pages for row in page["profiles"]]
        assert len(ids) == len(set(ids)), f"duplicate profiles in {params}"
        assert all(page["total"] == len(ids) for page in pages), (params, len(ids), [p["total"] for p in pages])
        out[f"profiles {params}"] = pages
    for search in ("", "acme", "corp"):
        r = client.get("/ui/api/accounts", params={"search": search, "limit": "100"})
        assert r.status_code == 200, r.text
        keys = [a["accountKey"] for a in r.json()["accounts"]]
        assert len(keys) == len(set(keys)) == r.json()["total"], r.json()
        out[f"accounts {search}"] = r.json()
    for ns, value in universe():
        for name, definition in DEFINITIONS.items():
            r = client.post("/ui/api/computed-preview", json={**definition, "entityId": value, "entityIdNS": ns})
            body = r.json()
            if r.status_code == 200:
                # The preview is the value the saved attribute has after its backfill.
                assert body["value"] == _computed(client, ns, value, name), (ns, value, name, body)
            else:
                assert r.status_code == 404, r.text
            out[f"preview {name} {ns}:{value}"] = (r.status_code, body)
    return out


def test_workspace_browse_with_four_shards_answers_what_one_shard_answers(tier: Tier) -> None:
    """One shard applies identity-heavy traffic (devices that log in, shared emails joining
    graphs, CRM upserts, accounts, unlinks, deletes); then four shards replay the same stream.
    Profile lists (plain, searched, by namespace, dataset samples, every page), account
    searches and previews of both computed attributes on every identity are equal, with no
    duplicate rows, totals equal to the rows listed, and each preview equal to the computed
    value the profile carries after backfill."""
    start_gateway(tier, shards=1)
    tier.start_shards(1, "one")
    send(tier.gateways[0], traffic(seed=18, count=300))
    for name in SAVED:
        r = tier.gateways[0].post("/data/core/ca/attributes", json={"name": name, **DEFINITIONS[name]})
        assert r.status_code == 200, r.text
    wait_for(lambda: _caught_up(tier.cluster.url, ["profile-0"]), 120, what="one shard caught up")
    for name in DEFINITIONS:
        wait_for(lambda: _backfilled(tier.gateways[0], name), 60, what=f"{name} backfilled")
    one = workspace(tier.gateways[0])
    assert one["profiles {}"][0]["total"] > 10
    assert one["accounts "]["total"] >= 2
    assert sum(1 for k, (s, b) in ((k, v) for k, v in one.items() if k.startswith("preview "))
               if s == 200 and b["value"]) > 10, "previews must count events"
    assert 0 < one["profiles {'dataset': 'demo-events'}"][0]["total"]
    graphs = snapshot(tier.gateways[0])

    tier.stop("one-shard-0")
    asyncio.run(_delete_consumers(tier.cluster.url, ["profile-0"]))
    start_gateway(tier, shards=4)
    tier.start_shards(4, "four")
    wait_for(lambda: _caught_up(tier.cluster.url, [f"profile-{i}" for i in range(4)]), 180, what="four caught up")
    for name in DEFINITIONS:
        wait_for(lambda: _backfilled(tier.gateways[0], name), 60, what=f"{name} backfilled on every shard")
    assert _spans_shards(graphs, 4) >= 3, "the traffic must give profiles whose data lives on several shards"
    four = workspace(tier.gateways[0])
    differ = [k for k in one if one[k] != four[k]]
    assert not differ, f"{len(differ)} answers differ, e.g. {differ[0]}:\n{one[differ[0]]}\n{four[differ[0]]}"
