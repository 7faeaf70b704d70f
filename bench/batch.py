"""Batch ingestion: a CSV through a 10-field Data Prep mapping into the lake and the profile.

`python -m bench.batch [--rows N ...]`: for each size, a fresh stack (nats-server, gateway,
lake worker with its loader, profile worker; real processes, default configuration), a CSV
of N people written to disk, then `inlet batch load` (a real subprocess) uploads it in 16 MiB
chunks and completes it. Reported per size: rows/s into the lake (COMPLETE → the batch's
Parquet file renamed into place, `recordsWritten` set) and into the profile (COMPLETE → the
last row's profile readable: one profile worker applies the stream in order, so the last
row applied means every row applied), and the peak resident memory (VmHWM) of every process.
Memory must not grow with N: files are streamed, never loaded whole.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx

from bench.measure import peak_rss_mb
from bench.processes import Stack

MAPPING = {"mappings": [
    {"sourceType": "EXPRESSION", "source": "lower(trim(email))", "destination": "identityMap.Email[0].id"},
    {"sourceType": "EXPRESSION", "source": "sha256(lower(trim(email)))", "destination": "loyalty.loyaltyID[0]"},
    {"sourceType": "ATTRIBUTE", "source": "first", "destination": "person.name.firstName"},
    {"sourceType": "EXPRESSION", "source": "upper(last)", "destination": "person.name.lastName"},
    {"sourceType": "EXPRESSION", "source": "concat(first, \" \", last)", "destination": "person.name.fullName"},
    {"sourceType": "EXPRESSION", "source": "format(date(birth, \"dd/MM/yyyy\"), \"yyyy-MM-dd\")",
     "destination": "person.birthDate"},
    {"sourceType": "EXPRESSION", "source": "to_integer(points)", "destination": "loyalty.points"},
    {"sourceType": "EXPRESSION", "source": "iif(to_integer(points) > 500, \"gold\", \"silver\")",
     "destination": "loyalty.tier"},
    {"sourceType": "EXPRESSION", "source": "upper(country)", "destination": "homeAddress.countryCode"},
    {"sourceType": "ATTRIBUTE", "source": "city", "destination": "homeAddress.city", "default": "unknown"},
]}


def write_csv(path: Path, rows: int) -> str:
    """N people, streamed to disk; returns the last row's email."""
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "first", "last", "birth", "points", "country", "city"])
        for i in range(rows):
            writer.writerow([f" Person{i}@Shop.Example", f"First{i}", f"last{i}", f"{1 + i % 28:02d}/{1 + i % 12:02d}/19{50 + i % 50}",
                             str(i % 1000), "fr", "" if i % 7 == 0 else "Paris"])
    return f"person{rows - 1}@shop.example"


def run(rows: int) -> dict[str, object]:
    with Stack() as stack:
        procs = {"profile worker": stack.start("worker", "profile"), "lake worker": stack.start("worker", "lake"),
                 "gateway": stack.start("gateway")}
        time.sleep(2)  # the workers' consumers exist before the batch (not a synchronisation of the figure)
        path, mapping = stack.tmp / "people.csv", stack.tmp / "mapping.json"
        last = write_csv(path, rows)
        mapping.write_text(json.dumps(MAPPING))
        url = f"http://127.0.0.1:{stack.port}"
        auth = {"Authorization": f"Bearer {stack.token}"}
        started = time.perf_counter()
        cli = subprocess.Popen([sys.executable, "-m", "inlet", "batch", "load", str(path), "--dataset", "demo-profiles",
                                "--mapping", str(mapping), "--url", url, "--token", stack.token],
                               env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lake_s = profile_s = client_mb = 0.0
        with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
            while profile_s == 0.0:
                now = time.perf_counter() - started
                if cli.poll() is not None and cli.returncode != 0 or now > 1800:
                    raise RuntimeError(f"the batch did not load: {cli.communicate()[0]}")
                if not lake_s:
                    for line in (stack.tmp / "worker-lake.log").read_text().splitlines():
                        if "is in the lake" in line:
                            lake_s = now
                found = client.get("/data/core/ups/access/entities",
                                   params={"schema.name": "_xdm.context.profile", "entityId": last, "entityIdNS": "Email"})
                if found.status_code == 200:
                    profile_s = now
                if cli.poll() is None:
                    client_mb = max(client_mb, peak_rss_mb(cli.pid))
                time.sleep(0.05)
        out, _ = cli.communicate(timeout=600)
        memory = {name: round(peak_rss_mb(p.pid), 1) for name, p in procs.items()}
        assert stack.nats.process is not None
        memory["nats-server"] = round(peak_rss_mb(stack.nats.process.pid), 1)
        memory["inlet batch load"] = round(client_mb, 1)
        errors = stack.errors()
        return {"rows": rows, "bytes": path.stat().st_size, "lake_s": round(lake_s, 1), "profile_s": round(profile_s, 1),
                "lake_rows_per_s": round(rows / lake_s) if lake_s else None,
                "profile_rows_per_s": round(rows / profile_s), "peak_mb": memory, "summary": out.strip().splitlines()[-1:],
                "errors": errors}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 300_000])
    args = parser.parse_args()
    for rows in args.rows:
        print(json.dumps(run(rows)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
