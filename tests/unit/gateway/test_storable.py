"""The gateway refuses what no store can hold as sent (issue 12.3, 12.4): invalid UTF-8, a
number past a double, an escape that is no Unicode character, a field name with a quote,
backslash or control character. Everything else passes, including the same characters in
values and text that only looks like such a number."""

from __future__ import annotations

import json

import pytest

from gateway.limits import Shape, storable
from inlet.config import Limits
from inlet.outcomes import Reason, Rejected

SHAPE = Shape(Limits())


@pytest.mark.parametrize("raw, reason, detail", [
    (b'{"name": "caf\xe9"}', Reason.malformed_json, "not valid UTF-8"),
    (b'{"\xff": 1}', Reason.malformed_json, "not valid UTF-8"),
    (b'{"price": 1e400}', Reason.invalid_message, "number 1e400 is out of the range of a double"),
    (b'{"price": -2.5E+999}', Reason.invalid_message, "out of the range of a double"),
    (b'{"n": ' + b"9" * 400 + b"}", Reason.invalid_message, "out of the range of a double"),
    (b'{"s": "x\\ud800y"}', Reason.malformed_json, "lone surrogate"),
    (b'{"say \\"hi\\"": 1}', Reason.invalid_message, "field name 'say \"hi\"'"),
    (b'{"web": {"back\\\\slash" : 1}}', Reason.invalid_message, "field name"),
    (b'{"a": [{"tab\\there": 1}]}', Reason.invalid_message, "field name"),
    (b'{"nul\\u0000": 1}', Reason.invalid_message, "field name"),
])
def test_what_no_store_holds_is_refused_with_the_reason(raw: bytes, reason: Reason, detail: str) -> None:
    with pytest.raises(Rejected) as refused:
        SHAPE.check(raw)
    assert refused.value.reason is reason and refused.value.status == 400
    assert detail in refused.value.detail


@pytest.mark.parametrize("raw", [
    json.dumps({"name": "café ☕", "emoji": "😀"}, ensure_ascii=False).encode(),
    json.dumps({"emoji": "😀", "quote": 'say "hi"', "path": "C:\\dir", "ctl": "a\tb"}).encode(),  # escapes in values
    b'{"price": 1e308, "small": 1e-400, "id": "1e400", "n": 123456789012345678901234567890}',
    b'{"slash\\/ok": 1, "caf\\u00e9": 2}',  # escapes that make ordinary names
    b'{"unterminated \\"',  # not JSON at all: the parser's to refuse, with its own message
])
def test_everything_else_passes(raw: bytes) -> None:
    storable(raw)
