"""The Data Prep function library: Adobe's names and argument order
(https://experienceleague.adobe.com/en/docs/experience-platform/data-prep/functions).

Every function takes already-evaluated arguments and returns a value; bad input raises
`MappingFailure` naming the function and the value, which the row's report carries. `None`
(a missing field, JSON `null`, an empty CSV cell) passes through the string functions as
`None`, as in Adobe's mapper, so `coalesce` and a mapping's `default` can fill it in.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any


class MappingFailure(Exception):
    """A row could not be mapped: `function` failed on `value` (or the expression itself)."""

    def __init__(self, function: str, value: Any, detail: str, destination: str = "") -> None:
        super().__init__(f"{function}({value!r}): {detail}")
        self.function = function
        self.value = value
        self.detail = detail
        self.destination = destination

    def report(self) -> dict[str, Any]:
        value = self.value if isinstance(self.value, (str, int, float, bool)) or self.value is None else repr(self.value)
        return {"destination": self.destination, "function": self.function, "value": value, "message": self.detail}


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise MappingFailure(name, value, "expects a string, not an object or array")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def _strings(name: str) -> Callable[[Callable[[str], Any]], Callable[..., Any]]:
    def wrap(op: Callable[[str], Any]) -> Callable[..., Any]:
        def call(value: Any) -> Any:
            text = _text(name, value)
            return None if text is None else op(text)
        return call
    return wrap


def concat(*values: Any) -> str | None:
    parts = [_text("concat", v) for v in values]
    return None if all(p is None for p in parts) else "".join(p for p in parts if p is not None)


def explode(value: Any, regex: Any = ",") -> list[str] | None:
    text = _text("explode", value)
    if text is None:
        return None
    try:
        return re.split(str(regex), text)
    except re.error as exc:
        raise MappingFailure("explode", regex, f"not a regular expression: {exc}") from None


def split(value: Any, separator: Any = ",") -> list[str] | None:
    """Adobe's `split(STRING, SEPARATOR)`: a plain separator, not a regular expression."""
    text = _text("split", value)
    if text is None:
        return None
    if not separator:
        raise MappingFailure("split", separator, "needs a non-empty separator")
    return text.split(str(separator))


def join(separator: Any, *values: Any) -> str:
    items: list[Any] = []
    for v in values:
        items.extend(v if isinstance(v, list) else [v])
    return str(separator).join(_text("join", v) or "" for v in items if v is not None)


def replacestr(value: Any, find: Any, replacement: Any) -> str | None:
    text = _text("replacestr", value)
    return None if text is None else text.replace(str(find), str(replacement))


def substr(value: Any, start: Any, length: Any = None) -> str | None:
    text = _text("substr", value)
    if text is None:
        return None
    begin = _integer("substr", start)
    if begin < 0:
        raise MappingFailure("substr", start, "the start index must not be negative")
    return text[begin:] if length is None else text[begin:begin + _integer("substr", length)]


def _hash(name: str, algorithm: str) -> Callable[..., str | None]:
    def digest(value: Any, charset: Any = "UTF-8") -> str | None:
        text = _text(name, value)
        if text is None:
            return None
        try:
            data = text.encode(str(charset))
        except (LookupError, UnicodeEncodeError) as exc:
            raise MappingFailure(name, value, f"cannot be encoded as {charset}: {exc}") from None
        return hashlib.new(algorithm, data).hexdigest()
    return digest


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise MappingFailure(name, value, "is a boolean, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise MappingFailure(name, value, "is not a finite number")
        return int(value)
    text = _text(name, value)
    if text is None or not text.strip():
        raise MappingFailure(name, value, "is empty, not a number")
    try:
        return int(text.strip())
    except ValueError:
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            raise MappingFailure(name, value, "is not a number") from None
        if not number.is_finite():
            raise MappingFailure(name, value, "is not a finite number")
        return int(number)


def to_integer(value: Any) -> int | None:
    return None if value is None else _integer("to_integer", value)


def to_bigint(value: Any) -> int | None:
    return None if value is None else _integer("to_bigint", value)


def to_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise MappingFailure("to_float", value, "is a boolean, not a number")
    try:
        number = float(value if isinstance(value, (int, float)) else str(value).strip())
    except ValueError:
        raise MappingFailure("to_float", value, "is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise MappingFailure("to_float", value, "is not a finite number")
    return number


def to_decimal(value: Any, scale: Any = None) -> float | None:
    """A number rounded to `scale` decimal places (half up), e.g. currency amounts."""
    number = to_float(value)
    if number is None or scale is None:
        return number
    places = _integer("to_decimal", scale)
    quantum = Decimal(1).scaleb(-places)
    return float(Decimal(str(number)).quantize(quantum, rounding="ROUND_HALF_UP"))


def to_boolean(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y"):
        return True
    if text in ("false", "0", "no", "n"):
        return False
    raise MappingFailure("to_boolean", value, "is not true/false, 1/0 or yes/no")


# Java DateTimeFormatter letters (Adobe's date formats) → strptime directives.
_DATE_LETTERS = {
    "yyyy": "%Y", "uuuu": "%Y", "yy": "%y", "MMMM": "%B", "MMM": "%b", "MM": "%m", "M": "%m",
    "dd": "%d", "d": "%d", "HH": "%H", "H": "%H", "hh": "%I", "h": "%I", "mm": "%M", "m": "%M",
    "ss": "%S", "s": "%S", "SSS": "%f", "SSSSSS": "%f", "a": "%p", "EEEE": "%A", "EEE": "%a",
    "Z": "%z", "XXX": "%z", "XX": "%z", "X": "%z", "xxx": "%z", "z": "%Z",
}


def strptime_format(pattern: str) -> str:
    """Translate a Java date pattern (`yyyy-MM-dd'T'HH:mm:ss`) into a strptime format."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise MappingFailure("date", pattern, "has an unclosed quote")
            out.append(pattern[i + 1:end].replace("%", "%%") or "'")
            i = end + 1
        elif char.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == char:
                j += 1
            run = pattern[i:j]
            if run not in _DATE_LETTERS:
                raise MappingFailure("date", pattern, f"uses the unsupported pattern letters {run!r}")
            out.append(_DATE_LETTERS[run])
            i = j
        else:
            out.append("%%" if char == "%" else char)
            i += 1
    return "".join(out)


def iso(moment: datetime) -> str:
    """XDM `date-time`: UTC, milliseconds, `Z`."""
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _moment(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, timezone.utc)  # epoch milliseconds, as Adobe
    text = _text(name, value)
    try:
        moment = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise MappingFailure(name, value, "is not an ISO 8601 date-time; give date() its format") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def date(value: Any, pattern: Any = None, default: Any = None) -> datetime | None:
    """Adobe's `date(DATE, FORMAT, DEFAULT_DATE)`: parse `value` with a Java-style `pattern`
    (UTC unless the pattern has a zone); without a pattern, ISO 8601 or epoch milliseconds.
    `default` is returned instead of failing when `value` does not parse."""
    if value is None or value == "":
        return None if default is None else _moment("date", default)
    try:
        if pattern is None:
            return _moment("date", value)
        text = _text("date", value) or ""
        moment = datetime.strptime(text.strip(), strptime_format(str(pattern)))
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except ValueError as exc:
        if default is not None:
            return _moment("date", default)
        raise MappingFailure("date", value, f"does not match the format {pattern!r}: {exc}") from None
    except MappingFailure:
        if default is not None:
            return _moment("date", default)
        raise


def format_date(value: Any, pattern: Any) -> str | None:
    """Adobe's `format(DATE, FORMAT)`: a date as text in a Java-style pattern."""
    if value is None:
        return None
    moment = _moment("format", value)
    out = moment.strftime(strptime_format(str(pattern)))
    return out


def now() -> datetime:
    return datetime.now(timezone.utc)


def iif(condition: Any, when_true: Any, when_false: Any) -> Any:
    if not isinstance(condition, bool):
        raise MappingFailure("iif", condition, "the condition must be true or false")
    return when_true if condition else when_false


def coalesce(*values: Any) -> Any:
    """The first value that is neither null nor empty: a default for a missing field."""
    return next((v for v in values if v is not None and v != ""), None)


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def is_null(value: Any) -> bool:
    return value is None


def length(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        return len(value)
    return len(_text("length", value) or "")


def decode(key: Any, *pairs: Any) -> Any:
    """Adobe's `decode(KEY, K1, V1, ..., DEFAULT)`: the value paired with `key`."""
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i] == key:
            return pairs[i + 1]
    return pairs[-1] if len(pairs) % 2 else None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "concat": concat,
    "explode": explode,
    "split": split,
    "join": join,
    "replacestr": replacestr,
    "substr": substr,
    "lower": _strings("lower")(str.lower),
    "lcase": _strings("lcase")(str.lower),
    "upper": _strings("upper")(str.upper),
    "ucase": _strings("ucase")(str.upper),
    "trim": _strings("trim")(str.strip),
    "ltrim": _strings("ltrim")(str.lstrip),
    "rtrim": _strings("rtrim")(str.rstrip),
    "length": length,
    "sha256": _hash("sha256", "sha256"),
    "sha1": _hash("sha1", "sha1"),
    "md5": _hash("md5", "md5"),
    "to_integer": to_integer,
    "to_bigint": to_bigint,
    "to_float": to_float,
    "to_decimal": to_decimal,
    "to_boolean": to_boolean,
    "date": date,
    "format": format_date,
    "now": now,
    "iif": iif,
    "coalesce": coalesce,
    "is_empty": is_empty,
    "is_null": is_null,
    "decode": decode,
}
