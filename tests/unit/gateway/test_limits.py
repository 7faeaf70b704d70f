import time

import pytest

from gateway.limits import RateLimiter, Shape
from inlet.config import Limits
from inlet.outcomes import Reason, Rejected

SHAPE = Shape(Limits(max_depth=4, max_string_bytes=10))


@pytest.mark.parametrize(
    "doc",
    [b'{"a": [1, {"b": "x"}]}', b'{"s": "0123456789"}', b'{"s": "[[[[[[[[[[", "t": "\\"{{{{"}', b"[]", b"",
     b'[{"a": [{}]}, [[[]]], {"b": {"c": {}}}]', b'"\\', b'"unterm'],
)
def test_documents_within_limits_pass(doc: bytes) -> None:
    SHAPE.check(doc)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (b'{"a": [[[[1]]]]}', Reason.too_deep),
        (b"[" * 100000 + b"]" * 100000, Reason.too_deep),
        (b'{"s": "01234567890"}', Reason.string_too_long),
        (b'{"s": "0123456789\\"x"}', Reason.string_too_long),
        (b"[[[[[[[[[[", Reason.too_deep),  # unclosed levels count
        (b'{"s": "012345678901', Reason.string_too_long),  # unterminated, still too long
        (b'{"a": {"b": [{"c": [1]}]}}', Reason.too_deep),
        (b'["\\"]", [[[[]]]]]', Reason.too_deep),  # the bracket in the string does not count
    ],
)
def test_documents_past_limits_are_refused(doc: bytes, reason: Reason) -> None:
    with pytest.raises(Rejected) as caught:
        SHAPE.check(doc)
    assert caught.value.reason is reason


@pytest.mark.parametrize(
    "doc",
    [
        b'"' + b'\\"' * 500_000,  # one unterminated string of escaped quotes: was quadratic
        (b'"' + b'\\"' * 30_000 + b'" ') * 15,
        b"[" * 500_000 + b"]" * 500_000,
        b"[" + b"[]," * 300_000 + b"[]]",
        b"[" + b'"ab",' * 200_000 + b'""]',
    ],
)
def test_hostile_megabyte_documents_are_checked_in_linear_time(doc: bytes) -> None:
    shape = Shape(Limits())
    started = time.perf_counter()
    try:
        shape.check(doc)
    except Rejected:
        pass
    # Linear: tens of milliseconds. The quadratic tokenizer this replaces took hours on the first.
    assert time.perf_counter() - started < 2.0


def test_token_buckets_allow_bursts_then_say_when_to_retry() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    for _ in range(4):
        limiter.take("c", rate=2)  # burst: two seconds' worth
    with pytest.raises(Rejected) as caught:
        limiter.take("c", rate=2)
    assert caught.value.status == 429 and caught.value.retry_after == 1
    limiter.take("other", rate=2)  # buckets are per key
    now[0] = 0.5
    limiter.take("c", rate=2)  # refilled one token
    limiter.take("unlimited", rate=0)
