"""Schema validation: which validator, and what validation costs the gateway.

`python -m bench.schemas validators`: per-message cost of validating the bench's realistic
ExperienceEvent (identityMap, web, commerce: the default event schema with its field groups)
with each candidate, from the message's raw bytes (what the gateway holds), and what each
reports for a message with five violations (error-path correctness):

- `msgspec typed`: the schema compiled to msgspec Structs; decoding the bytes is the check;
- `walk`: inlet's collecting validator over `msgspec.json.decode` (every violation);
- `fastjsonschema`: the same resolved schema compiled to Python by fastjsonschema;
- `jsonschema-rs`: the same schema in Rust (`jsonschema_rs`), over the decoded document.

`python -m bench.schemas gateway`: one gateway, two datasets that differ only in their schema
(`demo-events`: the default event schema; `bench-free`: none), driven alternately with the
same batches of 100 unique events (the Python HTTP/2 driver) in one run: accepted events/s
with validation on and off.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from bench import bodies, h2client
from bench.measure import Meter, Result, Window, cpu
from bench.processes import CONFIG_TOML, Stack
from inlet.schemas.registry import Registry
from inlet.schemas.standard import default_schema_id

EVENT = bodies.message("bench-000001-1")["body"]["xdmEntity"]
INVALID = {**EVENT, "commerce": {"order": {"priceTotal": "12", "currencyCode": "euro"}},
           "web": {"webInteraction": {"type": "bogus"}, "webPageDetails": {"URL": "x", "name": 5}}, "mystery": True}
EXPECTED = {"/commerce/order/priceTotal", "/commerce/order/currencyCode", "/web/webInteraction/type",
            "/web/webPageDetails/name", "/mystery"}


def candidates() -> dict[str, tuple[Callable[[bytes], bool], Callable[[bytes], set[str]]]]:
    """name → (is it valid?, the paths it reports for an invalid message)."""
    validator = Registry("demo").validator("prod", default_schema_id("demo", "experienceevent"))
    assert validator is not None
    schema = validator.schema
    out: dict[str, tuple[Callable[[bytes], bool], Callable[[bytes], set[str]]]] = {}

    def typed_ok(raw: bytes) -> bool:
        try:
            validator._decode(raw)
            return True
        except msgspec.ValidationError:
            return False

    def typed_paths(raw: bytes) -> set[str]:
        try:
            validator._decode(raw)
            return set()
        except msgspec.ValidationError as exc:  # one error: "... - at `$.web.webInteraction.type`"
            where = str(exc).rpartition("at `$")[2].rstrip("`")
            return {where.replace(".", "/").replace("[", "/").replace("]", "")}

    out["msgspec typed (inlet's fast path)"] = (typed_ok, typed_paths)
    out["walk (inlet's report)"] = (lambda raw: not validator.check_value(msgspec.json.decode(raw)),
                                    lambda raw: {v.path for v in validator.check_value(msgspec.json.decode(raw))})
    out["inlet: typed, walk on failure"] = (lambda raw: not validator.check(raw),
                                            lambda raw: {v.path for v in validator.check(raw)})
    try:
        import fastjsonschema

        compiled = fastjsonschema.compile(_portable(schema))

        def fjs_ok(raw: bytes) -> bool:
            try:
                compiled(msgspec.json.decode(raw))
                return True
            except fastjsonschema.JsonSchemaValueException:
                return False

        def fjs_paths(raw: bytes) -> set[str]:
            try:
                compiled(msgspec.json.decode(raw))
                return set()
            except fastjsonschema.JsonSchemaValueException as exc:
                return {"/" + "/".join(str(p) for p in exc.path[1:])}

        out["fastjsonschema"] = (fjs_ok, fjs_paths)
    except ImportError:
        print("fastjsonschema not installed: skipped", file=sys.stderr)
    try:
        import jsonschema_rs

        rs = jsonschema_rs.validator_for(_portable(schema))
        out["jsonschema-rs"] = (lambda raw: bool(rs.is_valid(msgspec.json.decode(raw))),
                                lambda raw: {"/" + "/".join(str(p) for p in e.instance_path)
                                             for e in rs.iter_errors(msgspec.json.decode(raw))})
    except ImportError:
        print("jsonschema-rs not installed: skipped", file=sys.stderr)
    return out


def _portable(schema: dict[str, Any]) -> dict[str, Any]:
    """The resolved schema as plain JSON Schema (draft 7): XDM's `meta:*` keys dropped."""
    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not k.startswith("meta:") and k not in ("$id", "version")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return {"$schema": "http://json-schema.org/draft-07/schema#", **clean(schema)}


def validators(repeat: int = 5, number: int = 20_000) -> str:
    valid, invalid = msgspec.json.encode(EVENT), msgspec.json.encode(INVALID)
    lines = ["| validator | valid event, µs | invalid event, µs | paths reported for 5 violations |",
             "| --- | ---: | ---: | --- |"]
    for name, (ok, paths) in candidates().items():
        assert ok(valid) and not ok(invalid), name
        best_valid = min(timeit.repeat(lambda: ok(valid), number=number, repeat=repeat)) / number * 1e6
        best_invalid = min(timeit.repeat(lambda: ok(invalid), number=number // 10, repeat=repeat)) / (number // 10) * 1e6
        found = paths(invalid)
        right = len(found & EXPECTED)
        wrong = sorted(found - EXPECTED)
        verdict = f"{right}/5 right" + (f", wrong: {wrong}" if wrong else "")
        lines.append(f"| {name} | {best_valid:.1f} | {best_invalid:.1f} | {verdict} |")
    return "\n".join(lines)


def decode_path(repeat: int = 5, number: int = 20_000) -> str:
    """The gateway's whole per-message decode (`gateway.decode.decode_message`: envelope,
    routing, identities, bus message) with and without the dataset's schema: the CPU the
    validation adds to each message, free of the load driver and of a shared machine's noise."""
    from gateway.decode import decode_message
    from inlet import config as config_module

    config = config_module.load({"INLET_CONFIG": ""})
    config.datasets.append(config_module.Dataset(id="bench-free", xdm_class="experienceevent"))
    connection = config.connection("demo")
    assert connection is not None
    checked = msgspec.json.encode(bodies.message("bench-000001-1"))
    free = checked.replace(b'"demo-events"', b'"bench-free"')
    on = min(timeit.repeat(lambda: decode_message(checked, config, connection, 0), number=number, repeat=repeat))
    off = min(timeit.repeat(lambda: decode_message(free, config, connection, 0), number=number, repeat=repeat))
    return (f"| decode_message, one event | µs |\n| --- | ---: |\n| validation on | {on / number * 1e6:.1f} |\n"
            f"| validation off | {off / number * 1e6:.1f} |")


FREE = """
[[datasets]]
id = "demo-events"
class = "experienceevent"
schema = "https://ns.adobe.com/demo/schemas/event"

[[datasets]]
id = "bench-free"
class = "experienceevent"
"""


class DatasetBodies(bodies.Bodies):
    def __init__(self, batch: int, dataset: str) -> None:
        super().__init__(batch)
        self.template = self.template.replace(b'"demo-events"', b'"%b"' % dataset.encode())


def gateway(seconds: float, warmup: float, repeat: int, batch: int = 100, connections: int = 4,
            concurrency: int = 32) -> str:
    results: dict[str, list[Result]] = {"validation on": [], "validation off": []}
    with Stack() as stack:
        (stack.tmp / "inlet.toml").write_text(CONFIG_TOML + FREE)
        proc = stack.start("gateway")
        url = urlsplit(f"http://127.0.0.1:{stack.port}")
        assert url.hostname and url.port
        for i in range(repeat):
            order = ("validation on", "validation off") if i % 2 == 0 else ("validation off", "validation on")
            for name in order:
                dataset = "demo-events" if name == "validation on" else "bench-free"
                window = Window(warmup, seconds)
                meter = Meter({"client": cpu(__import__("os").getpid()), "server": cpu(proc.pid)}, window)
                failed = h2client.run(url.hostname, url.port, bodies.path(batch), DatasetBodies(batch, dataset),
                                      bodies.accepted(batch), connections, max(1, concurrency // connections), window)
                result = Result.of(window, failed, meter.rates())
                results[name].append(result)
                print(f"  run {i + 1}/{repeat} {name}: {result.events_per_s:,.0f} events/s, p50 {result.p50_ms:.1f} ms",
                      file=sys.stderr, flush=True)
        errors = stack.errors()
    on = statistics.median(r.events_per_s for r in results["validation on"])
    off = statistics.median(r.events_per_s for r in results["validation off"])
    lines = ["| gateway, batches of 100 | accepted events/s | p50 ms | CPU % client/server |", "| --- | ---: | ---: | --- |"]
    for name, runs in results.items():
        lines.append(f"| {name} | {statistics.median(r.events_per_s for r in runs):,.0f} | "
                     f"{statistics.median(r.p50_ms for r in runs):.1f} | "
                     f"{statistics.median(r.cpu.get('client', 0) for r in runs):.0f}/"
                     f"{statistics.median(r.cpu.get('server', 0) for r in runs):.0f} |")
    lines.append(f"\nvalidation on / off: {on / off:.2f}" + (f"\nerrors: {errors}" if errors else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.schemas")
    parser.add_argument("what", choices=["validators", "gateway"])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    from bench import machine

    print(f"machine: {machine.describe()}", flush=True)
    started = time.time()
    if args.what == "validators":
        print(validators() + "\n\n" + decode_path())
    else:
        print(gateway(args.seconds, args.warmup, args.repeat))
    print(f"({time.time() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
