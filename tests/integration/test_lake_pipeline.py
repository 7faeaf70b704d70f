"""Accepted messages reach the Parquet lake through the real lake worker."""

from __future__ import annotations

import time

import polars as pl
import pyarrow.dataset as ds

from tests.harness import ROLL_INTERVAL, System, event, message


def lake_rows(system: System) -> pl.DataFrame:
    files = sorted((system.data_dir / "lake").rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def test_an_event_is_in_the_lake_within_the_roll_interval_exactly_once(system: System) -> None:
    xdm = event(email="lake@shop.example", event_id="lake-1", commerce={"order": {"priceTotal": 12.5}})
    for _ in range(2):  # a client retry: stored once
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    accepted = time.monotonic()

    def landed() -> pl.DataFrame | None:
        rows = lake_rows(system)
        return rows if rows.height and "lake-1" in rows["_id"].to_list() else None

    rows = system.wait_for(landed, 10, "a lake file")
    assert rows is not None
    assert time.monotonic() - accepted < ROLL_INTERVAL + 3
    mine = rows.filter(pl.col("_id") == "lake-1")
    assert mine.height == 1
    assert mine["commerce"].struct.field("order").struct.field("priceTotal").to_list() == [12.5]
    assert mine["_inlet_dataset"].to_list() == ["demo-events"]
    (message_id,) = mine["_inlet_message_id"].to_list()
    assert message_id.endswith("prod/demo-events/lake-1")  # the Nats-Msg-Id (gateway.decode.event_id)

    (path,) = [p for p in (system.data_dir / "lake").rglob("*.parquet")]
    relative = path.relative_to(system.data_dir / "lake").parts
    assert relative[:2] == ("prod", "demo-events")
    assert relative[2].startswith("inlet_date=") and relative[3].startswith("inlet_hour=")
    assert not list((system.data_dir / "lake").rglob("*.tmp"))

    hive = pl.scan_parquet(system.data_dir / "lake" / "prod" / "demo-events", hive_partitioning=True).collect()
    assert hive.height == 1 and {"inlet_date", "inlet_hour"} <= set(hive.columns)
    arrow = ds.dataset(system.data_dir / "lake" / "prod" / "demo-events", format="parquet", partitioning="hive")
    assert arrow.count_rows() == 1


def test_every_dataset_lands_including_records_and_lake_only_ones(system: System) -> None:
    ids = {"Email": [{"id": "rec@shop.example", "primary": True}]}
    assert system.http.post("/collection/demo", json=message("demo-profiles", {"identityMap": ids, "person": {"name": {"firstName": "R"}}})).status_code == 200
    assert system.http.post("/collection/demo", json=message("lake-only", event(email=None, event_id="only"))).status_code == 200

    def datasets() -> set[str]:
        rows = lake_rows(system)
        return set(rows["_inlet_dataset"].to_list()) if rows.height else set()

    assert system.wait_for(lambda: datasets() >= {"demo-profiles", "lake-only"}, 10, "both datasets")


def test_killing_the_lake_worker_repeatedly_leaves_every_message_exactly_once(system: System) -> None:
    """Kill -9 at random points (mid-buffer, mid-write, between rename and ack), restart,
    repeat; afterwards every accepted message id is in the lake exactly once."""
    import random
    import threading

    import httpx

    rng = random.Random(7)
    accepted: list[str] = []
    done = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=system.url, timeout=20) as client:
            for i in range(400):
                xdm = event(email=f"k{i % 7}@shop.example", event_id=f"kill-{i}")
                if client.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200:
                    accepted.append(f"kill-{i}")
        done.set()

    sender = threading.Thread(target=send)
    sender.start()
    for _ in range(4):
        threshold = len(accepted) + rng.randint(20, 80)
        system.wait_for(lambda: len(accepted) >= threshold or done.is_set(), 30, "traffic")
        system.kill("lake")
        system.start("lake")
    sender.join(60)
    assert done.is_set() and len(accepted) == 400

    def complete() -> pl.DataFrame | None:
        rows = lake_rows(system)
        if not rows.height:
            return None
        ids = rows.filter(pl.col("_id").str.starts_with("kill-"))["_id"]
        return rows if ids.n_unique() == 400 else None

    rows = system.wait_for(complete, 60, "every message in the lake")
    assert rows is not None
    ids = rows.filter(pl.col("_id").str.starts_with("kill-"))["_id"].to_list()
    assert sorted(ids) == sorted(accepted), "a message is missing or written twice"


def test_two_lake_workers_share_the_stream_and_duckdb_pyarrow_and_polars_agree(system: System) -> None:
    import duckdb

    second = System.ARGS["lake"]
    System.ARGS["lake-2"] = second
    try:
        system.start("lake-2")  # a second lake worker on the same durable consumer
    finally:
        System.ARGS.pop("lake-2")
    for i in range(200):
        xdm = event(email=f"two{i % 5}@shop.example", event_id=f"two-{i}", shop={"n": i})
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200

    def complete() -> pl.DataFrame | None:
        rows = lake_rows(system)
        return rows if rows.height and rows.filter(pl.col("_id").str.starts_with("two-"))["_id"].n_unique() == 200 else None

    rows = system.wait_for(complete, 20, "every event in the lake")
    assert rows is not None and rows.filter(pl.col("_id").str.starts_with("two-")).height == 200
    writers = {p.name.split("-")[1] for p in (system.data_dir / "lake").rglob("part-*.parquet")}
    assert len(writers) == 2, "both workers should have written"

    root = system.data_dir / "lake" / "prod" / "demo-events"
    with duckdb.connect() as db:
        (count,) = db.execute(
            f"SELECT count(*) FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning=true, union_by_name=true)"
        ).fetchone()
        (hours,) = db.execute(
            f"SELECT count(DISTINCT inlet_hour) FROM read_parquet('{root}/*/*/*.parquet', hive_partitioning=true, union_by_name=true)"
        ).fetchone()
    assert count == ds.dataset(root, format="parquet", partitioning="hive").count_rows() == 200
    assert hours >= 1
    assert pl.scan_parquet(root, hive_partitioning=True).select(pl.len()).collect().item() == 200


def test_lake_cli_lists_queries_and_compacts(system: System) -> None:
    import json
    import subprocess
    import sys

    for i in range(3):
        xdm = event(email="cli@shop.example", event_id=f"cli-{i}", commerce={"order": {"priceTotal": 10.0 * i}})
        assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    system.wait_for(lambda: lake_rows(system).height >= 3, 10, "rows in the lake")

    def inlet(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "inlet", "lake", *args], env=system.env, cwd=system.tmp,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "demo-events" in inlet("ls")
    csv = inlet("query", 'SELECT count(*) AS n, sum(commerce.order.priceTotal) AS total FROM "demo-events"', "--format", "csv")
    assert csv.splitlines() == ["n,total", "3,30.0"]
    lines = inlet("query", "SELECT _id FROM demo_events ORDER BY _id", "--format", "json").splitlines()
    assert [json.loads(line)["_id"] for line in lines] == ["cli-0", "cli-1", "cli-2"]
    assert "cli-1" in inlet("query", "SELECT _id FROM demo_events")
    assert "compacted 0 partitions" in inlet("compact")  # the current hour is still open
    bad = subprocess.run([sys.executable, "-m", "inlet", "lake", "query", "SELECT nope FROM nowhere"],
                         env=system.env, cwd=system.tmp, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "inlet lake:" in bad.stderr


def test_sigterm_flushes_what_the_lake_worker_buffered(system: System) -> None:
    system.stop("lake")
    system.env["INLET_LAKE_ROLL_INTERVAL"] = "3600"  # only a shutdown can write this file
    system.start("lake")
    assert system.post_event(email="bye@shop.example", event_id="buffered-at-exit").status_code == 200
    lag = lambda: system.http.get("/metrics").text  # noqa: E731
    system.wait_for(lambda: 'inlet_consumer_lag{consumer="lake"} 1.0' in lag(), 10, "the event fetched, unacked")
    assert system.stop("lake") == 0
    rows = lake_rows(system)
    assert "buffered-at-exit" in rows["_id"].to_list()
    assert 'inlet_consumer_lag{consumer="lake"} 0.0' in lag()


def test_lake_query_before_the_first_roll_says_when_it_is_due_and_csv_holds_nested_values(system: System) -> None:
    """Issue 12 (small things): a query before the first roll said `relation 'demo-events' was
    not found`; `--format csv "SELECT * ..."` failed on XDM's nested columns."""
    import subprocess
    import sys

    def inlet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "inlet", "lake", *args], env=system.env, cwd=system.tmp,
                              capture_output=True, text=True, timeout=60)

    system.stop("lake")
    system.env["INLET_LAKE_ROLL_INTERVAL"] = "3600"  # the rows wait for a roll an hour away
    system.start("lake")
    xdm = event(email="csv@shop.example", event_id="csv-1", commerce={"order": {"priceTotal": 3.5}})
    assert system.http.post("/collection/demo", json=message("demo-events", xdm)).status_code == 200
    system.wait_for(lambda: list((system.data_dir / "lake" / ".rolls").glob("*.json")), 10, "the roll recorded")
    early = inlet("query", 'SELECT count(*) FROM "demo-events"')
    assert early.returncode == 2 and "not found" not in early.stderr, early.stderr
    assert "dataset 'demo-events' has no files yet: a lake worker holds rows of it; its next roll is due in 3" \
        in early.stderr, early.stderr  # about 3600 s

    system.stop("lake")  # SIGTERM writes the buffer
    out = inlet("query", 'SELECT * FROM "demo-events"', "--format", "csv")
    assert out.returncode == 0, out.stderr
    header, line = out.stdout.splitlines()
    assert '"{""order"":{""priceTotal"":3.5}}"' in line and header.startswith("_id,")
