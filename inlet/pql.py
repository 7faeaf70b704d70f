"""The Profile Query Language (PQL) subset computed attributes use, compiled to inlet's
definition model (`inlet.computed_attributes`).

Adobe's computed attributes API takes an `expression` of type PQL (`"format": "pql/text"`):

    xEvent[(commerce.checkouts.value > 0.0 or commerce.order.priceTotal >= 10.0)
           and (timestamp occurs <= 7 days before now)].sum(commerce.order.priceTotal)
    xEvent[eventType.equals("commerce.backofficeOrderPlaced", false)]
        .topN(timestamp, 1).map({"timestamp": timestamp, "value": producedBy}).head()

What is understood: `xEvent`, optionally filtered by `[condition]`, then one aggregation:
`sum(path)`, `count()`, `min(path)`, `max(path)`, most recent (`topN(timestamp, 1)`) and
first (`bottomN(timestamp, 1)`), each followed by `.map({"timestamp": timestamp, "value":
path}).head()` or `.head().path`. A condition combines, with `and`, `or`, `not` and
parentheses: comparisons of a field with a literal (`= != < <= > >=`), `path in [..]`,
`path.equals("x", false)`, `path.isNull()` / `path.isNotNull()`, and the lookback
`timestamp occurs <= N hours|days|weeks|months before now`. Anything else is refused with
`PqlError`, whose message names the construct, so the API answers a clear 400.

A filter compiles to the definition model's conjunctive form: one `Condition` per clause that
holds alone (`conditions`), a list of alternatives per clause of several (`anyOf`), and a
clause made only of `eventType` equalities becomes `filter.eventType`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any, Union

from inlet.computed_attributes import Condition, Duration, Filter, Function

MAX_CLAUSES = 20
MAX_LENGTH = 4096

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<op><=|>=|!=|=|<|>)
  | (?P<punct>[\[\]().,{}:])
  | (?P<name>[A-Za-z_$@][A-Za-z0-9_$@]*)
""", re.VERBOSE)

_UNITS = {"hour": "HOURS", "hours": "HOURS", "day": "DAYS", "days": "DAYS", "week": "WEEKS", "weeks": "WEEKS",
          "month": "MONTHS", "months": "MONTHS"}
_OPS = {"=": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_NEGATED = {"eq": "ne", "ne": "eq", "lt": "gte", "lte": "gt", "gt": "lte", "gte": "lt"}
_FUNCTIONS: dict[str, Function] = {"sum": "SUM", "min": "MIN", "max": "MAX"}
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "occurs", "before", "now"}


class PqlError(ValueError):
    """The expression is not PQL, or is PQL outside the subset computed attributes use."""


@dataclass(frozen=True)
class Literal:
    """One condition on one field (a leaf of the boolean formula)."""

    field: str
    op: str
    value: Any = None

    def negated(self) -> list[Literal]:
        """not(self), as a conjunction of literals."""
        if self.op in _NEGATED:
            return [Literal(self.field, _NEGATED[self.op], self.value)]
        if self.op == "exists":
            return [Literal(self.field, "exists", not self.value)]
        # not (x in [a, b]) = x != a and x != b
        return [Literal(self.field, "ne", v) for v in self.value]


@dataclass(frozen=True)
class Window:
    """`timestamp occurs <= N unit before now`: the lookback."""

    count: int
    unit: str


@dataclass(frozen=True)
class Node:
    kind: str  # "and" | "or" | "not"
    parts: tuple[Formula, ...]


Formula = Union[Literal, Window, Node]


@dataclass
class Expression:
    """A compiled expression: what the definition model needs."""

    function: Function
    field: str | None
    filter: Filter = default(default_factory=Filter)
    duration: Duration | None = None


def compile_expression(text: str) -> Expression:
    if len(text) > MAX_LENGTH:
        raise PqlError(f"the expression is longer than {MAX_LENGTH} characters")
    parser = _Parser(_tokens(text))
    result = parser.expression()
    rest = parser.peek()
    if rest is not None:
        raise PqlError(f"unexpected {rest[1]!r} after the aggregation")
    return result


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise PqlError(f"unexpected character {text[position]!r} at position {position}")
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
        position = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self, ahead: int = 0) -> tuple[str, str] | None:
        index = self.index + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise PqlError("the expression ends too early")
        self.index += 1
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token[1] == text and token[0] != "string":
            self.index += 1
            return True
        return False

    def expect(self, text: str) -> None:
        token = self.peek()
        if not self.accept(text):
            raise PqlError(f"expected {text!r}, found {token[1] if token else 'the end'!r}")

    # -- the aggregation -------------------------------------------------------------------
    def expression(self) -> Expression:
        start = self.take()
        if start[1] != "xEvent":
            raise PqlError(f"computed attributes aggregate events: the expression must start with xEvent, "
                           f"not {start[1]!r}")
        formula: Formula | None = None
        if self.accept("["):
            formula = self.disjunction()
            self.expect("]")
        self.expect(".")
        name = self.take()[1]
        self.expect("(")
        if name == "count":
            self.expect(")")
            function: Function = "COUNT"
            path: str | None = None
        elif name in _FUNCTIONS:
            path = self.path()
            self.expect(")")
            function = _FUNCTIONS[name]
        elif name in ("topN", "bottomN"):
            self.expect("timestamp")
            self.expect(",")
            count = self.take()[1]
            if count != "1":
                raise PqlError(f"{name}(timestamp, {count}) lists events; computed attributes take {name}(timestamp, 1)")
            self.expect(")")
            path = self.picked()
            function = "MOST_RECENT" if name == "topN" else "FIRST"
        else:
            raise PqlError(f"the aggregation {name}() is not supported; use sum, count, min, max, "
                           f"topN(timestamp, 1) (most recent) or bottomN(timestamp, 1) (first)")
        return _compile(function, path, formula)

    def picked(self) -> str:
        """After topN/bottomN: `.map({"timestamp": timestamp, "value": path}).head()` or
        `.head().path`; the path of the value kept."""
        self.expect(".")
        step = self.take()[1]
        if step == "head":
            self.expect("(")
            self.expect(")")
            self.expect(".")
            return self.path()
        if step != "map":
            raise PqlError(f"{step}() after topN/bottomN is not supported; use .map({{...}}).head() or .head().field")
        self.expect("(")
        self.expect("{")
        value: str | None = None
        while True:
            key = self.take()
            if key[0] != "string":
                raise PqlError(f"map keys are strings, found {key[1]!r}")
            self.expect(":")
            target = self.path()
            if key[1] == '"value"':
                value = target
            elif key[1] != '"timestamp"' or target != "timestamp":
                raise PqlError(f"map takes \"timestamp\": timestamp and \"value\": field, found {key[1]}")
            if not self.accept(","):
                break
        self.expect("}")
        self.expect(")")
        self.expect(".")
        self.expect("head")
        self.expect("(")
        self.expect(")")
        if value is None:
            raise PqlError('map needs a "value": field entry')
        return value

    # -- conditions ------------------------------------------------------------------------
    def disjunction(self) -> Formula:
        parts = [self.conjunction()]
        while self.accept("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Node("or", tuple(parts))

    def conjunction(self) -> Formula:
        parts = [self.negation()]
        while self.accept("and"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else Node("and", tuple(parts))

    def negation(self) -> Formula:
        if self.accept("not"):
            return Node("not", (self.negation(),))
        if self.accept("("):
            inner = self.disjunction()
            self.expect(")")
            return inner
        return self.condition()

    def condition(self) -> Formula:
        path = self.path(methods=True)
        token = self.peek()
        if token is None:
            raise PqlError(f"a condition on {path} ends too early")
        if path == "timestamp" and token[1] == "occurs":
            return self.window()
        if token[1] == "occurs":
            raise PqlError(f"occurs is supported on timestamp only (the lookback), not on {path}")
        if token[0] == "op":
            self.take()
            return Literal(path, _OPS[token[1]], self.literal())
        if token[1] == "in":
            self.take()
            self.expect("[")
            values = [self.literal()]
            while self.accept(","):
                values.append(self.literal())
            self.expect("]")
            return Literal(path, "in", values)
        if token[1] == ".":
            self.take()
            method = self.take()[1]
            self.expect("(")
            if method in ("isNull", "isNotNull"):
                self.expect(")")
                return Literal(path, "exists", method == "isNotNull")
            if method == "equals":
                value = self.literal()
                if not isinstance(value, str):
                    raise PqlError("equals compares strings")
                if self.accept(","):
                    case_sensitive = self.literal()
                    if case_sensitive is not False:
                        raise PqlError("equals(..., true) (case-insensitive matching) is not supported")
                self.expect(")")
                return Literal(path, "eq", value)
            raise PqlError(f"the function {method}() is not supported in a computed attribute's filter")
        raise PqlError(f"unexpected {token[1]!r} after {path}")

    def window(self) -> Window:
        self.expect("occurs")
        if not (self.accept("<=") or self.accept("<")):
            raise PqlError("timestamp occurs takes <= or < N units before now")
        count = self.take()[1]
        if not count.isdigit() or int(count) < 1:
            raise PqlError(f"the lookback needs a whole number of units, found {count!r}")
        unit = _UNITS.get(self.take()[1].lower())
        if unit is None:
            raise PqlError("the lookback unit is hours, days, weeks or months")
        self.expect("before")
        self.expect("now")
        return Window(int(count), unit)

    def path(self, methods: bool = False) -> str:
        parts = [self._name()]
        while self.peek() == ("punct", ".") and (nxt := self.peek(1)) is not None and nxt[0] == "name":
            after = self.peek(2)
            if methods and after == ("punct", "("):
                break  # `.equals(`, `.isNull(`: a method, not a field
            self.take()
            parts.append(self._name())
        return ".".join(parts)

    def _name(self) -> str:
        token = self.take()
        if token[0] != "name" or token[1] in _KEYWORDS:
            raise PqlError(f"expected a field name, found {token[1]!r}")
        return token[1]

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return _unquote(text)
        if text in ("true", "false"):
            return text == "true"
        raise PqlError(f"expected a number, string, true or false, found {text!r}")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


# -- compiling the formula ----------------------------------------------------------------

def _compile(function: Function, path: str | None, formula: Formula | None) -> Expression:
    windows: list[Window] = []
    if isinstance(formula, Window):  # the lookback alone: every event in it counts
        windows.append(formula)
        formula = None
    clauses = _cnf(formula, windows) if formula is not None else []
    if len(clauses) > MAX_CLAUSES:
        raise PqlError(f"the filter has {len(clauses)} clauses once expanded; at most {MAX_CLAUSES} are supported")
    event_types: list[str] = []
    conditions: list[Condition] = []
    any_of: list[list[Condition]] = []
    for clause in clauses:
        if not event_types and clause and all(l.field == "eventType" and l.op == "eq" for l in clause):
            event_types = [str(l.value) for l in clause]
            continue
        compiled = [Condition(field=l.field, op=l.op, value=l.value) for l in clause]  # type: ignore[arg-type]
        if len(compiled) == 1:
            conditions.append(compiled[0])
        else:
            any_of.append(compiled)
    duration = None
    if windows:
        shortest = min(windows, key=lambda w: w.count * HOURS_PER[w.unit])
        duration = Duration(count=shortest.count, unit=shortest.unit)  # type: ignore[arg-type]
    return Expression(function=function, field=path,
                      filter=Filter(eventType=event_types, conditions=conditions, anyOf=any_of), duration=duration)


HOURS_PER = {"HOURS": 1, "DAYS": 24, "WEEKS": 168, "MONTHS": 732}


def _cnf(formula: Formula, windows: list[Window], negate: bool = False) -> list[list[Literal]]:
    """The formula as a conjunction of clauses (each a disjunction of literals). A lookback
    window is taken out of the formula: it must hold for every counted event, so it may only
    appear where it constrains all of them (not under `or` or `not`)."""
    if isinstance(formula, Window):
        raise PqlError("timestamp occurs ... before now is the lookback; it cannot sit under or / not")
    if isinstance(formula, Literal):
        if negate:
            return [[l] for l in formula.negated()]
        return [[formula]]
    if formula.kind == "not":
        return _cnf(formula.parts[0], windows, not negate)
    conjunctive = (formula.kind == "and") != negate
    if conjunctive:
        clauses: list[list[Literal]] = []
        for part in formula.parts:
            if isinstance(part, Window) and not negate:
                windows.append(part)
                continue
            clauses.extend(_cnf(part, windows, negate))
        return clauses
    # A disjunction: distribute over the parts' clauses.
    product: list[list[Literal]] = [[]]
    for part in formula.parts:
        part_clauses = _cnf(part, windows, negate)
        product = [a + b for a in product for b in part_clauses]
        if len(product) > MAX_CLAUSES:
            raise PqlError(f"the filter expands to more than {MAX_CLAUSES} clauses")
    return product
