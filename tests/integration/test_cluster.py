"""Profile shards on a real 3-node NATS JetStream cluster (docs/scaling.md).

Every test starts three nats-server processes from the wheel, with routes between them
(`inlet.cluster.NatsCluster`), and real gateway and profile-shard processes against all three.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client

from inlet.cluster import NatsCluster
from tests.harness import CONFIG_TOML, free_port, message, wait_for
from worker.profile.placement import Placement
from worker.profile.store import owner_id

COMPUTED = """
[[computed_attributes]]
name = "spend30d"
sandbox = "prod"
function = "SUM"
field = "commerce.order.priceTotal"
filter = {eventType = ["commerce.purchases"]}
duration = {count = 30, unit = "DAYS"}

[[computed_attributes]]
name = "visits7d"
sandbox = "prod"
function = "COUNT"
duration = {count = 7, unit = "DAYS"}
"""

ACCOUNT_PEOPLE = """
[[datasets]]
id = "demo-account-people"
class = "account-person"
"""

ENTITIES = "/data/core/ups/access/entities"
ACCOUNTS = 3


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "cluster", 3)
    nodes.start()
    yield nodes
    nodes.stop()


class Tier:
    """Gateways and profile shards of one deployment, on the cluster."""

    def __init__(self, tmp: Path, cluster: NatsCluster, extra_config: str = "") -> None:
        self.tmp = tmp
        self.cluster = cluster
        self.token = "test-token-" + uuid.uuid4().hex
        config = tmp / "inlet.toml"
        config.write_text(CONFIG_TOML.format(roll_interval=60) + extra_config)
        self.env = {**os.environ, "INLET_CONFIG": str(config), "INLET_NATS_URL": cluster.url,
                    "INLET_REPLICAS": "3", "INLET_API_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.gateways: list[httpx.Client] = []

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Path:
        log = self.tmp / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "inlet", *args], env=env, stdout=out,
                                                stderr=subprocess.STDOUT, cwd=self.tmp)
        setattr(self.procs[name], "log_offset", offset)
        return log

    def start_shards(self, shards: int, data: str) -> None:
        for shard in range(shards):
            self.start_shard(shard, shards, data)

    def start_shard(self, shard: int, shards: int, data: str, wait: bool = True, attempts: int = 5) -> str:
        """Start a shard; with `wait`, as `inlet up`'s supervisor does, start it again if it
        exits during start-up (a JetStream request timing out while a freshly created R3
        bucket elects its leader) and fail only if it keeps exiting."""
        name = f"{data}-shard-{shard}"
        env = dict(self.env, INLET_PROFILE_SHARDS=str(shards), INLET_DATA_DIR=str(self.tmp / data))
        for _ in range(attempts if wait else 1):
            log = self._spawn(name, ["worker", "profile", "--shard", str(shard)], env)
            if not wait:
                break
            offset = getattr(self.procs[name], "log_offset")
            wait_for(lambda: b"consuming" in log.read_bytes()[offset:] or self.procs[name].poll() is not None, 60,
                     what=f"{name} consuming")
            if self.procs[name].poll() is None:
                break
        if wait:
            assert self.procs[name].poll() is None, log.read_text()
        return name

    def start_gateways(self, count: int, shards: int) -> None:
        for client in self.gateways:
            client.close()
        self.gateways = []
        for i in range(count):
            port = free_port()
            name = f"gateway-{i}"
            if name in self.procs:
                self.stop(name)
            env = dict(self.env, INLET_HTTP_PORT=str(port), INLET_PROFILE_SHARDS=str(shards),
                       INLET_DATA_DIR=str(self.tmp / f"gw{i}-{port}"))
            self._spawn(name, ["gateway"], env)
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=15,
                                  headers={"Authorization": f"Bearer {self.token}"})
            wait_for(lambda: _ready(client), 60, what=f"{name} ready")
            self.gateways.append(client)

    def stop(self, name: str) -> int:
        proc = self.procs[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(30)

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.procs[name].wait()

    def log_text(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def close(self) -> None:
        for client in self.gateways:
            client.close()
        for name, proc in self.procs.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def tier(tmp_path: Path, cluster: NatsCluster) -> Iterator[Tier]:
    t = Tier(tmp_path, cluster, COMPUTED + ACCOUNT_PEOPLE)
    try:
        yield t
    finally:
        t.close()


async def _consumers(url: str) -> dict[str, tuple[int | None, int | None]]:
    nc = Client()
    await nc.connect(url.split(","))
    try:
        js = nc.jetstream()
        return {c.name: (c.num_pending, c.num_ack_pending) for c in await js.consumers_info("INGEST")}
    finally:
        await nc.close()


async def _delete_consumers(url: str, names: list[str]) -> None:
    nc = Client()
    await nc.connect(url.split(","))
    try:
        js = nc.jetstream()
        for name in names:
            await js.delete_consumer("INGEST", name)
    finally:
        await nc.close()


def _caught_up(url: str, names: list[str]) -> bool:
    state = asyncio.run(_consumers(url))
    return all(name in state and state[name] == (0, 0) for name in names)


# --- the identity-heavy generator -------------------------------------------------------------

PEOPLE = 12
DEVICES = 10


def _ecid(k: int) -> str:
    return f"{(k + 1) * 7919:038d}"


def _email(i: int) -> str:
    return f"person{i}@shop.example"


def _identity_map(*ids: tuple[str, str, bool]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for ns, value, authenticated in ids:
        entry: dict[str, Any] = {"id": value}
        if authenticated:
            entry["authenticatedState"] = "authenticated"
        out.setdefault(ns, []).append(entry)
    return out


def traffic(seed: int, count: int) -> list[tuple[str, dict[str, Any]]]:
    """("post" | "unlink" | "delete", payload) in the order they are sent: anonymous devices
    that later log in, shared emails and devices that join graphs, CRM records upserted,
    unlinks and deletes between them."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    out: list[tuple[str, dict[str, Any]]] = []
    for n in range(count):
        person, other, device = rng.randrange(PEOPLE), rng.randrange(PEOPLE), rng.randrange(DEVICES)
        roll = rng.random()
        when = (now - timedelta(minutes=rng.randrange(0, 60 * 24 * 10))).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if roll < 0.55:
            if roll < 0.2:
                ids = _identity_map(("ECID", _ecid(device), False))  # anonymous browsing
            elif roll < 0.35:
                ids = _identity_map(("Email", _email(person), True), ("ECID", _ecid(device), False))  # login
            elif roll < 0.45:
                ids = _identity_map(("Email", _email(person), True), ("CRMID", f"crm-{person}", True))
            else:
                # a shared email: two people's identities in one message (graphs on different shards)
                ids = _identity_map(("Email", _email(person), True), ("Email", _email(other), False))
            purchase = rng.random() < 0.5
            xdm: dict[str, Any] = {"_id": f"evt-{seed}-{n}", "timestamp": when,
                                   "eventType": "commerce.purchases" if purchase else "web.webpagedetails.pageViews",
                                   "identityMap": ids}
            if purchase:
                xdm["commerce"] = {"order": {"priceTotal": rng.randrange(1, 500)}}
            out.append(("post", message("demo-events", xdm)))
        elif roll < 0.62:
            account = {"sourceKey": f"acme-{rng.randrange(ACCOUNTS)}"}
            if rng.random() < 0.4:
                out.append(("post", message("demo-accounts", {
                    "_id": f"acc-{seed}-{n}", "accountKey": account,
                    "accountName": rng.choice(["Acme", "Acme Corp", "ACME"]),
                    "accountOrganization": {"annualRevenue": rng.randrange(10**6)}}, rng.choice(["create", "merge"]))))
            else:
                out.append(("post", message("demo-account-people", {
                    "_id": f"rel-{seed}-{n}", "accountKey": account, "isActive": rng.random() < 0.8,
                    "identityMap": _identity_map(("Email", _email(person), True))})))
        elif roll < 0.85:
            ids = _identity_map(("Email", _email(person), True))
            if rng.random() < 0.5:
                ids["CRMID"] = [{"id": f"crm-{person}", "authenticatedState": "authenticated"}]
            record: dict[str, Any] = {"_id": f"rec-{seed}-{n}", "identityMap": ids}
            if rng.random() < 0.7:
                record["person"] = {"name": {"firstName": rng.choice(["Ann", "Bob", "Cy", "Di"]) + str(person)}}
            if rng.random() < 0.2:
                record["b2b"] = {"accountKey": {"sourceKey": f"acme-{rng.randrange(ACCOUNTS)}"}}
            if rng.random() < 0.6:
                record["loyalty"] = {"tier": rng.choice(["gold", "silver", "bronze"]), "points": rng.randrange(1000)}
            out.append(("post", message("demo-profiles", record, rng.choice(["create", "merge", "merge"]))))
        elif roll < 0.93:
            ns, value = rng.choice([("Email", _email(person)), ("ECID", _ecid(device))])
            out.append(("unlink", {"entityId": value, "entityIdNS": ns}))
        else:
            out.append(("delete", {"entityId": _email(person), "entityIdNS": "Email", "schema.name": "_xdm.context.profile"}))
    return out


def send(client: httpx.Client, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """One request at a time, each acknowledged before the next: the stream's order is this."""
    for kind, payload in messages:
        if kind == "post":
            r = client.post("/collection/demo", json=payload)
            assert r.status_code == 200, r.text
        elif kind == "unlink":
            r = client.post("/data/core/ups/access/unlink", params=payload)
            assert r.status_code in (202, 404), r.text
        else:
            r = client.delete(ENTITIES, params=payload)
            assert r.status_code in (202, 404), r.text


def universe() -> list[tuple[str, str]]:
    return ([("Email", _email(i)) for i in range(PEOPLE)] + [("CRMID", f"crm-{i}") for i in range(PEOPLE)]
            + [("ECID", _ecid(k)) for k in range(DEVICES)])


def snapshot(client: httpx.Client) -> dict[str, Any]:
    """Every answer the API gives about every identity: merged profiles under both merge
    policies and with `identityGraph: none`, timelines in both orders (paged), graphs."""
    out: dict[str, Any] = {}
    for ns, value in universe():
        key = f"{ns}:{value}"
        for policy in ("", "crm-first"):
            params = {"schema.name": "_xdm.context.profile", "entityId": value, "entityIdNS": ns}
            if policy:
                params["mergePolicyId"] = policy
            r = client.get(ENTITIES, params=params)
            out[f"profile {policy} {key}"] = (r.status_code, r.json())
        for order, limit in (("timestamp", "1000"), ("-timestamp", "7")):
            r = client.get(ENTITIES, params={"schema.name": "_xdm.context.experienceevent",
                                             "relatedSchema.name": "_xdm.context.profile", "relatedEntityId": value,
                                             "relatedEntityIdNS": ns, "orderby": order, "limit": limit})
            out[f"events {order} {key}"] = (r.status_code, r.json())
        r = client.get("/data/core/ups/access/graph", params={"entityId": value, "entityIdNS": ns})
        out[f"graph {key}"] = (r.status_code, r.json())
    for k in range(ACCOUNTS):
        for limit in ("100", "2"):
            r = client.get(ENTITIES, params={"schema.name": "_xdm.context.account", "entityId": f"acme-{k}",
                                             "limit": limit})
            out[f"account acme-{k} {limit}"] = (r.status_code, r.json())
    for xdm_class in ("profile", "experienceevent", "account", "account-person"):
        r = client.get("/data/core/ups/config/unionSchema", params={"class": xdm_class})
        out[f"schema {xdm_class}"] = (r.status_code, r.json())
    return out


def _backfilled(client: httpx.Client, name: str) -> bool:
    """The definition's backfill is done on every shard (the gateway sums their progress)."""
    r = client.get(f"/data/core/ca/attributes/{name}")
    return r.status_code == 200 and r.json().get("backfill", {}).get("status") == "done"


def _spans_shards(snap: dict[str, Any], shards: int) -> int:
    """How many profiles have identities whose data lives on more than one of `shards`."""
    placement = Placement(0, shards, 16)
    spanning = 0
    for key, (status, body) in snap.items():
        if not key.startswith("graph ") or status != 200:
            continue
        members = [m["identity"] for m in body.get("identities", [])] if isinstance(body, dict) else []
        if len({placement.shard_of(owner_id("prod", m)) for m in members}) > 1:
            spanning += 1
    return spanning


def test_four_shards_end_in_the_state_one_shard_reaches_for_the_same_stream(tier: Tier) -> None:
    """Model-based: identity-heavy traffic (devices that log in later, shared emails joining
    graphs, CRM upserts, unlinks and deletes, two computed attributes) is applied by one shard;
    then the same stored stream is replayed into four shards on fresh stores. Every profile
    (two merge policies), timeline and graph, asked through either of two gateways, equals the
    one-shard answer."""
    tier.start_gateways(2, shards=1)
    tier.start_shards(1, "one")
    messages = traffic(seed=15, count=400)
    send(tier.gateways[0], messages[:200])
    # A computed attribute defined mid-stream: counted by a backfill for what came before it,
    # and by streaming after.
    r = tier.gateways[0].post("/data/core/ca/attributes", json={
        "name": "maxOrder10d", "function": "MAX", "field": "commerce.order.priceTotal",
        "filter": {"eventType": ["commerce.purchases"]}, "duration": {"count": 10, "unit": "DAYS"}})
    assert r.status_code == 200, r.text
    send(tier.gateways[0], messages[200:])
    wait_for(lambda: _caught_up(tier.cluster.url, ["profile-0"]), 120, what="one shard caught up")
    wait_for(lambda: _backfilled(tier.gateways[0], "maxOrder10d"), 60, what="backfill done")
    one = snapshot(tier.gateways[0])
    assert any("maxOrder10d" in json.dumps(b) for k, (s, b) in one.items() if k.startswith("profile ") and s == 200)
    assert sum(1 for k, (s, _) in one.items() if k.startswith("profile ") and s == 200) > 10
    assert sum(len(b.get("children", [])) for k, (s, b) in one.items() if k.startswith("events timestamp")) > 50
    assert sum(1 for k, (s, _) in one.items() if k.startswith("account ") and s == 200) >= 2
    people = [p for k, (s, b) in one.items() if k.startswith("account ") and s == 200
              for a in b.values() for p in a["people"]["children"]]
    assert any(p["entity"] for p in people), "account people must carry attributes from their shards"
    assert all(s == 200 for k, (s, _) in one.items() if k.startswith("schema ")), one

    tier.stop("one-shard-0")
    asyncio.run(_delete_consumers(tier.cluster.url, ["profile-0"]))
    tier.start_gateways(2, shards=4)
    tier.start_shards(4, "four")
    wait_for(lambda: _caught_up(tier.cluster.url, [f"profile-{i}" for i in range(4)]), 180, what="four caught up")
    wait_for(lambda: _backfilled(tier.gateways[0], "maxOrder10d"), 60, what="backfill done on every shard")
    assert _spans_shards(one, 4) >= 3, "the traffic must give profiles whose identities live on several shards"
    for gateway in tier.gateways:
        four = snapshot(gateway)
        differ = [k for k in one if one[k] != four[k]]
        assert not differ, f"{len(differ)} answers differ, e.g. {differ[0]}:\n{one[differ[0]]}\n{four[differ[0]]}"


def test_a_second_process_for_a_held_shard_refuses_and_the_holder_keeps_writing(tier: Tier) -> None:
    """Two processes claiming shard 1: the second finds the lease held, waits one lease
    period for it to expire, then exits with status 3 naming the holder, never consuming."""
    lease = "\n[profile]\nshard_lease = 2.0\n"
    (tier.tmp / "inlet.toml").write_text((tier.tmp / "inlet.toml").read_text() + lease)
    tier.start_gateways(1, shards=2)
    tier.start_shards(2, "a")
    second = tier.start_shard(1, 2, "b", wait=False)
    code = tier.procs[second].wait(30)
    assert code == 3, tier.log_text(second)
    assert "is held by" in tier.log_text(second)
    assert "consuming" not in tier.log_text(second)
    # The holder still writes: a profile whose data is on shard 1 appears.
    placement = Placement(1, 2, 16)
    email = next(e for e in (f"lease{i}@shop.example" for i in range(200))
                 if placement.owns(owner_id("prod", f"Email:{e}")))
    send(tier.gateways[0], [("post", message("demo-profiles", {"_id": "r1", "identityMap": _identity_map(
        ("Email", email, True)), "person": {"name": {"firstName": "Lea"}}}))])
    wait_for(lambda: tier.gateways[0].get(ENTITIES, params={"schema.name": "_xdm.context.profile", "entityId": email,
                                                             "entityIdNS": "Email"}).status_code == 200, 30,
             what="the holder applied the record")


def test_every_stream_and_bucket_is_replicated_on_three_nodes(tier: Tier) -> None:
    """`nats.replicas = 3`: INGEST, DEADLETTER and every KV bucket the processes create
    (merge policies, computed attributes, shard leases, ...) have three replicas."""
    tier.start_gateways(1, shards=2)
    tier.start_shards(2, "r")

    async def replicas() -> dict[str, int]:
        nc = Client()
        await nc.connect(tier.cluster.url.split(","))
        try:
            return {str(s.config.name): int(s.config.num_replicas or 1) for s in await nc.jetstream().streams_info()}
        finally:
            await nc.close()

    found = asyncio.run(replicas())
    for name in ("INGEST", "DEADLETTER", "KV_inlet_profile_shards", "KV_inlet_merge_policies", "KV_inlet_computed_attributes"):
        assert found.get(name) == 3, found


def test_resharding_two_to_four_loses_nothing(tier: Tier) -> None:
    """2 → 4 with traffic before, during (shards stopped: the stream keeps it) and after:
    `inlet shards reshard` copies each old store to the new shards that take its slots and
    drops the old consumers; the four shards then answer exactly what one shard answers for
    the whole stream."""
    messages = traffic(seed=24, count=360)
    tier.start_gateways(1, shards=2)
    tier.start_shards(2, "r")
    send(tier.gateways[0], messages[:150])
    wait_for(lambda: _caught_up(tier.cluster.url, ["profile-0", "profile-1"]), 120, what="two caught up")
    for shard in range(2):
        assert tier.stop(f"r-shard-{shard}") == 0
    send(tier.gateways[0], messages[150:250])  # accepted while no shard runs
    env = dict(tier.env, INLET_PROFILE_SHARDS="2", INLET_DATA_DIR=str(tier.tmp / "r"))
    done = subprocess.run([sys.executable, "-m", "inlet", "shards", "reshard", "--to", "4"], env=env, cwd=tier.tmp,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    tier.start_shards(4, "r")
    send(tier.gateways[0], messages[250:])
    names = [f"profile-{i}" for i in range(4)]
    wait_for(lambda: _caught_up(tier.cluster.url, names), 180, what="four caught up")
    four = snapshot(tier.gateways[0])
    for shard in range(4):
        tier.stop(f"r-shard-{shard}")
    asyncio.run(_delete_consumers(tier.cluster.url, names))
    tier.start_shards(1, "reference")
    wait_for(lambda: _caught_up(tier.cluster.url, ["profile-0"]), 120, what="reference caught up")
    one = snapshot(tier.gateways[0])
    assert sum(1 for k, (s, _) in one.items() if k.startswith("profile ") and s == 200) > 10
    differ = [k for k in one if one[k] != four[k]]
    assert not differ, f"{len(differ)} answers differ, e.g. {differ[0]}:\n{one[differ[0]]}\n{four[differ[0]]}"


def _send_retrying(client: httpx.Client, messages: list[tuple[str, dict[str, Any]]], progress: list[int]) -> None:
    """Like `send`, but a request that fails (a node or the leader just died) is sent again,
    as a client would: the same message id, so a retry of a stored message is stored once."""
    import time

    for kind, payload in messages:
        deadline = time.monotonic() + 60
        while True:
            try:
                if kind == "post":
                    r = client.post("/collection/demo", json=payload)
                elif kind == "unlink":
                    r = client.post("/data/core/ups/access/unlink", params=payload)
                else:
                    r = client.delete(ENTITIES, params=payload)
                if r.status_code < 500:
                    assert r.status_code in (200, 202, 404), r.text
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "a request kept failing for 60 s"
            time.sleep(0.2)
        progress[0] += 1


async def _leader(url: str, stream: str) -> str:
    nc = Client()
    await nc.connect(url.split(","))
    try:
        info = await nc.jetstream().stream_info(stream)
        assert info.cluster is not None and info.cluster.leader
        return str(info.cluster.leader)
    finally:
        await nc.close()


async def _stored_posts(url: str) -> int:
    nc = Client()
    await nc.connect(url.split(","))
    try:
        js = nc.jetstream()
        total = 0
        for kind in ("event", "record"):
            info = await js.stream_info("INGEST", subjects_filter=f"inlet.*.{kind}.*")
            total += sum((info.state.subjects or {}).values())
        return total
    finally:
        await nc.close()


def test_killing_the_stream_leader_and_a_shard_mid_load_loses_and_doubles_nothing(tier: Tier) -> None:
    """Chaos: kill -9 the nats-server that leads INGEST and one profile shard while traffic
    flows (retried by the client where a request failed), restart both. Every acknowledged
    message is stored once, and the four shards still answer exactly what one shard answers
    for the stored stream."""
    import threading

    tier.start_gateways(2, shards=4)
    tier.start_shards(4, "c")
    messages = traffic(seed=33, count=400)
    progress = [0]
    sender = threading.Thread(target=_send_retrying, args=(tier.gateways[0], messages, progress), daemon=True)
    sender.start()
    wait_for(lambda: progress[0] >= 100, 60, what="traffic under way")
    leader = tier.cluster.node_of_server(asyncio.run(_leader(tier.cluster.url, "INGEST")))
    leader.kill()
    tier.kill("c-shard-2")
    wait_for(lambda: progress[0] >= 200 or not sender.is_alive(), 120, what="traffic goes on without them")
    leader.start()
    tier.start_shard(2, 4, "c")  # restarted as the supervisor would, while the cluster settles
    sender.join(180)
    assert not sender.is_alive() and progress[0] == len(messages)
    posts = sum(1 for kind, _ in messages if kind == "post")
    # What a gateway spooled while the bus was away is replayed, in order, when it is back.
    wait_for(lambda: asyncio.run(_stored_posts(tier.cluster.url)) >= posts, 120, what="spooled messages replayed")
    assert asyncio.run(_stored_posts(tier.cluster.url)) == posts
    names = [f"profile-{i}" for i in range(4)]
    wait_for(lambda: _caught_up(tier.cluster.url, names), 180, what="four caught up")
    four = snapshot(tier.gateways[1])
    for shard in range(4):
        tier.stop(f"c-shard-{shard}")
    asyncio.run(_delete_consumers(tier.cluster.url, names))
    tier.start_shards(1, "reference")
    wait_for(lambda: _caught_up(tier.cluster.url, ["profile-0"]), 120, what="reference caught up")
    one = snapshot(tier.gateways[1])
    for key, (status, body) in one.items():
        if key.startswith("events timestamp") and status == 200:
            ids = [e["entityId"] for e in body["children"]]
            assert len(ids) == len(set(ids)), f"an event counted twice in {key}"
    differ = [k for k in one if one[k] != four[k]]
    assert not differ, f"{len(differ)} answers differ, e.g. {differ[0]}:\n{one[differ[0]]}\n{four[differ[0]]}"


def test_inlet_up_runs_the_clustered_layout(tmp_path: Path) -> None:
    """`inlet up --nats-cluster 3 --shards 2 --gateways 2`: three nats-servers, two shards, two
    gateways on consecutive ports; an event posted to one gateway is read from the other, every
    stream and bucket is R3, and SIGTERM stops it all cleanly."""
    port = free_port()
    while True:  # two consecutive free ports
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                port = free_port()
    env = {**os.environ, "INLET_DATA_DIR": str(tmp_path / "data"), "INLET_HTTP_PORT": str(port),
           "INLET_API_TOKEN": "cluster-token", "XDG_STATE_HOME": str(tmp_path / "state"), "INLET_DEMO": "0",
           "PYTHONUNBUFFERED": "1", "INLET_CONFIG": ""}
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "inlet", "up", "--nats-cluster", "3", "--shards", "2",
                               "--gateways", "2"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=10,
                            headers={"Authorization": "Bearer cluster-token"}) for p in (port, port + 1)]
    try:
        for client in clients:
            wait_for(lambda: _ready(client) or up.poll() is not None, 90, what="gateways ready")
            assert up.poll() is None, log.read_text()
        ids = _identity_map(("Email", "up@shop.example", True), ("ECID", _ecid(1), False))
        body = message("demo-events", {"_id": "up-1", "timestamp": "2026-11-23T10:00:00Z",
                                        "eventType": "web.webpagedetails.pageViews", "identityMap": ids})
        body["header"]["schemaRef"]["id"] = "https://ns.adobe.com/demo/schemas/event"  # the default dataset's
        r = clients[0].post("/collection/demo", json=body)
        assert r.status_code == 200, r.text
        wait_for(lambda: clients[1].get(ENTITIES, params={"schema.name": "_xdm.context.profile", "entityId": _ecid(1),
                                                          "entityIdNS": "ECID"}).status_code == 200, 60,
                 what="the profile, read through the other gateway")
        ports = json.loads((tmp_path / "data" / "cluster" / "ports.json").read_text())

        async def replicas() -> dict[str, int]:
            nc = Client()
            await nc.connect([f"nats://127.0.0.1:{client}" for client, _ in ports])
            try:
                return {str(s.config.name): int(s.config.num_replicas or 1) for s in await nc.jetstream().streams_info()}
            finally:
                await nc.close()

        wait_for(lambda: set(asyncio.run(replicas()).values()) == {3}, 30, what="every stream and bucket R3")
    finally:
        for client in clients:
            client.close()
        up.send_signal(signal.SIGTERM)
        assert up.wait(90) == 0, log.read_text()[-3000:]
