"""A batch file, read row by row (never whole), mapped and checked into bus messages.

Readers stream: JSON lines line by line, CSV through the `csv` module, Parquet one record
batch at a time (`pyarrow`), so memory does not grow with the file. Each row becomes XDM:
through the batch's mapping set when it has one (Data Prep runs before validation), else
as it is (a JSON line is the XDM document; a CSV column name is a dotted XDM path, as in
Adobe's CSV ingestion). Then the same checks as streaming: the dataset's XDM schema when it
has one, an identity for a Profile-enabled dataset, `_id` and `timestamp` for an event. A
row that fails any step is a `RowError` naming the file, the row (1-based, header excluded)
and, for a mapping, the function and value that failed.

Message ids are deterministic (`<org>/<sandbox>/<dataset>/b/<batch>/<file>/<row>`), so a
batch loaded twice (a loader that crashed and ran again) is applied once: the profile
worker remembers applied ids, and JetStream drops a republish inside its dedupe window.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date, datetime, time as dtime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from inlet.batches.state import BatchState, InputFormat, RowError
from inlet.config import Config, Dataset
from inlet.dataprep.functions import MappingFailure, iso
from inlet.dataprep.mapping import Mapper, destination_steps, place
from inlet.messages import Event, Record
from inlet.schemas.validate import Validator
from inlet.xdm import decode_head, identities, namespaces

PARQUET_BATCH_ROWS = 4096


class B2BSource(msgspec.Struct, kw_only=True):
    sourceKey: str | None = None
    sourceID: str | None = None


class B2BPerson(msgspec.Struct, kw_only=True):
    accountKey: B2BSource | None = None


class AccountHead(msgspec.Struct, kw_only=True):
    accountKey: B2BSource | None = None
    b2b: B2BPerson | None = None


_decode_account = msgspec.json.Decoder(AccountHead).decode
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode

Source = dict[str, Any] | bytes  # a source row, or a JSON line kept as bytes


def read(path: Path, fmt: InputFormat) -> Iterator[tuple[int, Source | RowError]]:
    """(row number, source row or the reason it cannot be read), in file order."""
    if fmt.format == "json":
        yield from _json_lines(path)
    elif fmt.format == "csv":
        yield from _csv(path, fmt)
    else:
        yield from _parquet(path)


def _json_lines(path: Path) -> Iterator[tuple[int, Source | RowError]]:
    with open(path, "rb") as lines:
        number = 0
        for line in lines:
            line = line.strip()
            if not line:
                continue
            number += 1
            if not line.startswith(b"{"):
                yield number, RowError(code="parse_failed", description="a JSON line must hold one JSON object", row=number)
            else:
                yield number, line


def _csv(path: Path, fmt: InputFormat) -> Iterator[tuple[int, Source | RowError]]:
    with open(path, newline="", encoding="utf-8", errors="strict") as text:
        reader = csv.reader(text, delimiter=fmt.delimiter, quotechar=fmt.quote or '"')
        try:
            header = next(reader) if fmt.header else None
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as exc:
            yield 1, RowError(code="parse_failed", description=f"the CSV header cannot be read: {exc}", row=1)
            return
        number = 0
        while True:
            number += 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                yield number, RowError(code="parse_failed", description=f"not a CSV row: {exc}", row=number)
                return  # the reader cannot resynchronise after a broken quote or encoding
            if not cells:
                number -= 1
                continue
            names = header or [f"_c{i}" for i in range(len(cells))]
            if len(cells) != len(names):
                yield number, RowError(code="parse_failed", row=number,
                                       description=f"{len(cells)} cells where the header names {len(names)}")
                continue
            yield number, {name: (cell if cell != "" else None) for name, cell in zip(names, cells)}


def _plain(value: Any) -> Any:
    """Parquet values → JSON values (dates as XDM date-times, decimals as numbers)."""
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dtime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parquet(path: Path) -> Iterator[tuple[int, Source | RowError]]:
    import pyarrow.parquet as pq

    number = 0
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # not Parquet at all: the whole file fails
        yield 1, RowError(code="parse_failed", description=f"not a Parquet file: {exc}", row=1)
        return
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield number, {k: _plain(v) for k, v in row.items() if v is not None}


class Preparer:
    """Turns source rows of one batch into bus messages (or row errors)."""

    def __init__(self, config: Config, state: BatchState, dataset: Dataset, validator: Validator | None) -> None:
        self.config = config
        self.state = state
        self.dataset = dataset
        self.validator = validator
        self.mapper = Mapper(state.mapping) if state.mapping else None
        self.namespaces = namespaces(tuple(config.identity.namespaces))
        self.flat_paths: dict[str, Any] = {}

    def xdm(self, source: Source, number: int, file: str) -> bytes | RowError:
        try:
            if self.mapper is not None:
                row = _decode_object(source) if isinstance(source, bytes) else source
                return _encode(self.mapper.apply(row))
            if isinstance(source, bytes):
                return source
            if self.state.inputFormat.format == "csv":
                return _encode(self._nest(source))
            return _encode(source)
        except MappingFailure as failure:
            report = failure.report()
            return RowError(code="mapping_failed", file=file, row=number, description=failure.detail,
                            destination=report["destination"], function=report["function"], value=report["value"])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return RowError(code="parse_failed", file=file, row=number, description=f"not a JSON object: {exc}")
        except Exception as exc:  # a column name that is not a path, a value msgspec cannot encode
            return RowError(code="parse_failed", file=file, row=number, description=str(exc))

    def _nest(self, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in row.items():
            if value is None:
                continue
            steps = self.flat_paths.get(name)
            if steps is None:
                steps = self.flat_paths[name] = destination_steps(name)
            place(out, steps, value)
        return out

    def message(self, xdm: bytes, number: int, file_index: int, file: str, received_ms: int) -> Event | Record | RowError:
        state, dataset = self.state, self.dataset
        try:
            head = decode_head(xdm)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return RowError(code="invalid_xdm", file=file, row=number, description=f"not an XDM document: {exc}")
        if self.validator is not None:
            violations = self.validator.check(xdm)
            if violations:
                first = violations[0]
                return RowError(code="schema_mismatch", file=file, row=number,
                                description=f"{len(violations)} schema violations, first: {msgspec.json.encode(first).decode()}")
        ids = identities(head, self.namespaces)
        if dataset.profile and not ids and dataset.xdm_class != "account":
            return RowError(code="missing_identity", file=file, row=number,
                            description=f"dataset {dataset.id!r} is enabled for profile; the row needs an identityMap identity")
        message_id = f"{state.org}/{state.sandbox}/{dataset.id}/b/{state.id}/{file_index}/{number}"
        if dataset.xdm_class == "experienceevent":
            if not head.id or not head.timestamp:
                return RowError(code="missing_field", file=file, row=number, description="an ExperienceEvent needs _id and timestamp")
            try:
                moment = datetime.fromisoformat(head.timestamp)
            except ValueError:
                return RowError(code="invalid_timestamp", file=file, row=number, description=f"timestamp {head.timestamp!r} is not ISO 8601")
            if moment.tzinfo is None:
                return RowError(code="invalid_timestamp", file=file, row=number, description=f"timestamp {head.timestamp!r} needs an offset")
            return Event(org=state.org, sandbox=state.sandbox, dataset=dataset.id, source=f"batch:{state.id}",
                         message_id=message_id, received_ms=received_ms, timestamp_ms=int(moment.timestamp() * 1000),
                         event_type=head.eventType or "", identities=ids, xdm=msgspec.Raw(xdm), profile=dataset.profile, batch=state.id)
        account = _decode_account(xdm)
        source = account.accountKey if dataset.xdm_class != "profile" else (account.b2b.accountKey if account.b2b else None)
        key = ((source.sourceKey or source.sourceID or "") if source else "").strip()
        if not key and dataset.xdm_class != "profile":
            return RowError(code="missing_field", file=file, row=number, description="an account record needs accountKey")
        return Record(org=state.org, sandbox=state.sandbox, dataset=dataset.id, source=f"batch:{state.id}",
                      message_id=message_id, received_ms=received_ms, identities=ids, xdm=msgspec.Raw(xdm),
                      record_class=dataset.xdm_class, account_key=key, profile=dataset.profile, batch=state.id)
