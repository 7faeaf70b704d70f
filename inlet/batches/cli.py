"""`inlet batch load FILE --dataset ID`: the Batch Ingestion API for people at a terminal.

Creates a batch, uploads the file (in `--chunk-mb` chunks through the large-file flow when it
is bigger, each chunk retried on a network error), completes it, and follows its Catalog
status with a progress bar (rows, bytes, rate, time left) until it ends; then prints a
summary with the rows that failed and why. Exit status 0 on success, 1 when the batch failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from inlet import running
from inlet.config import Config, api_token

BASE = "/data/foundation/import/batches"
RETRIES = 5


def _format_of(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    return {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "json")


def _estimate_rows(path: Path, fmt: str) -> int:
    """Rows in the file, counted without loading it (newlines; Parquet's footer)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    count = 0
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            count += block.count(b"\n")
    return max(count - (1 if fmt == "csv" else 0), 0)


class Progress:
    """One line on stderr, redrawn: what, done/total, rate, time left."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last = 0.0

    def show(self, label: str, done: float, total: float, unit: str, started: float, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 0.2:
            return
        self.last = now
        elapsed = max(now - started, 1e-6)
        rate = done / elapsed
        share = min(done / total, 1.0) if total else 0.0
        left = (total - done) / rate if rate > 0 and total > done else 0.0
        bar = "#" * int(share * 24)
        line = (f"{label:<8} [{bar:<24}] {_num(done, unit)}/{_num(total, unit)} {_num(rate, unit)}/s "
                f"{'done' if final else f'{left:5.0f} s left'}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


def _num(value: float, unit: str) -> str:
    if unit == "B":
        return f"{value / 1e6:,.1f} MB"
    return f"{value:,.0f} rows"


def _send(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """A request retried on network errors and 5xx (each upload is idempotent: a retried
    chunk replaces the one it repeats)."""
    for attempt in range(RETRIES):
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            if attempt == RETRIES - 1:
                raise SystemExit(f"inlet batch: {method} {url} failed: {exc}") from None
            time.sleep(0.5 * (attempt + 1))
            continue
        if response.status_code >= 500 and attempt < RETRIES - 1:
            time.sleep(0.5 * (attempt + 1))
            continue
        if response.status_code >= 400:
            raise SystemExit(f"inlet batch: {method} {url}: {response.status_code} {response.text}")
        return response
    raise AssertionError("unreachable")


def load(client: httpx.Client, path: Path, dataset: str, fmt: str, mapping: dict[str, Any] | None,
         chunk: int, partial: float, progress: Progress, out: Any = sys.stdout) -> int:
    body: dict[str, Any] = {"datasetId": dataset, "inputFormat": {"format": fmt}}
    if mapping is not None:
        body["inlet:mapping"] = mapping
    if partial:
        body["partialIngestionPercent"] = partial
    batch = _send(client, "POST", BASE, json=body).json()["id"]
    size = path.stat().st_size
    rows_total = _estimate_rows(path, fmt)
    url = f"{BASE}/{batch}/datasets/{dataset}/files/{path.name}"
    started = time.monotonic()
    with open(path, "rb") as data:
        if size <= chunk:
            _send(client, "PUT", url, content=data.read(), headers={"Content-Type": "application/octet-stream"})
        else:
            _send(client, "POST", url, params={"action": "INITIALIZE"})
            offset = 0
            while offset < size:
                piece = data.read(chunk)
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Range": f"bytes {offset}-{offset + len(piece) - 1}/{size}"}
                _send(client, "PATCH", url, content=piece, headers=headers)
                offset += len(piece)
                progress.show("upload", offset, size, "B", started)
            _send(client, "POST", url, params={"action": "COMPLETE"})
    progress.show("upload", size, size, "B", started, final=True)
    _send(client, "POST", f"{BASE}/{batch}", params={"action": "COMPLETE"})
    loading = time.monotonic()
    while True:
        status = _send(client, "GET", f"/data/foundation/catalog/batches/{batch}").json()[batch]
        metrics = status.get("metrics", {})
        if status["status"] in ("success", "failed", "abandoned"):
            break
        progress.show("load", metrics.get("recordsRead", 0), rows_total, "rows", loading)
        time.sleep(0.25)
    progress.show("load", metrics.get("recordsRead", 0), metrics.get("recordsRead", 0) or rows_total, "rows",
                  loading, final=True)
    return summary(status, batch, time.monotonic() - started, out)


def summary(status: dict[str, Any], batch: str, seconds: float, out: Any) -> int:
    metrics = status.get("metrics", {})
    read = metrics.get("recordsRead", 0)
    out.write(f"batch {batch}: {status['status']} in {seconds:.1f} s; {read:,} rows read, "
              f"{metrics.get('recordsWritten', 0):,} in the lake, {metrics.get('inletProfileRecords', 0):,} to the "
              f"profile, {metrics.get('failedRecordCount', 0):,} failed ({read / max(seconds, 1e-6):,.0f} rows/s)\n")
    for error in status.get("errors", [])[:20]:
        where = f"{error.get('file', '')}:{error.get('row', '')}" if error.get("row") else error.get("file", "")
        function = f" {error['function']}({error.get('value')!r})" if error.get("function") else ""
        target = f" → {error['destination']}" if error.get("destination") else ""
        out.write(f"  {where} {error['code']}{function}{target}: {error['description']}\n")
    hidden = metrics.get("failedRecordCount", 0) - len(status.get("errors", [])[:20])
    if hidden > 0:
        out.write(f"  … and {hidden:,} more failed rows\n")
    return 0 if status["status"] == "success" else 1


def main(argv: list[str], config: Config) -> int:
    parser = argparse.ArgumentParser(prog="inlet batch", description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="action", required=True)
    load_args = sub.add_parser("load", help="load a JSON lines, CSV or Parquet file into a dataset")
    load_args.add_argument("file", type=Path)
    load_args.add_argument("--dataset", required=True)
    load_args.add_argument("--sandbox", default="prod")
    load_args.add_argument("--mapping", type=Path, help="a Data Prep mapping set (JSON)")
    load_args.add_argument("--format", choices=["json", "csv", "parquet"], help="default: from the file name")
    load_args.add_argument("--chunk-mb", type=float, default=16.0, help="upload chunk size (large-file flow above it)")
    load_args.add_argument("--partial", type=float, default=0.0,
                           help="percent of rows that may fail while the rest load (default 0: any fails the batch)")
    load_args.add_argument("--url", help="gateway URL (default: the running system's)")
    load_args.add_argument("--token", help="API token (default: the configured one)")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"inlet batch: no file {args.file}", file=sys.stderr)
        return 2
    found = running.find(config)
    url = args.url or (found.gateway_url if found is not None else f"http://{config.http.host}:{config.http.port}")
    mapping = json.loads(args.mapping.read_text()) if args.mapping else None
    headers = {"Authorization": f"Bearer {args.token or api_token(config)}", "x-sandbox-name": args.sandbox,
               "x-gw-ims-org-id": config.org}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        return load(client, args.file, args.dataset, _format_of(args.file, args.format), mapping,
                    int(args.chunk_mb * 1024 * 1024), args.partial, Progress())
