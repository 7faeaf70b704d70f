"""Data Prep expressions, compiled once into closures over a source row.

The grammar is the part of Adobe's mapper syntax that mapping sets use in practice
(https://experienceleague.adobe.com/en/docs/experience-platform/data-prep/functions):

    expr    := or
    or      := and (("||" | "or") and)*
    and     := not (("&&" | "and") not)*
    not     := ("!" | "not") not | compare
    compare := primary (("==" | "!=" | "<" | "<=" | ">" | ">=") primary)?
    primary := "string" | 'string' | number | true | false | null
             | name "(" [expr ("," expr)*] ")"      a function of `functions.FUNCTIONS`
             | name ("." name)*                     a field of the row (dot: a sub-field)
             | "${" any text "}"                    a field whose name has spaces or dots
             | "(" expr ")"

A syntax error is found when the mapping set is created (`ExpressionError`), not per row.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from inlet.dataprep.functions import FUNCTIONS, MappingFailure

Row = dict[str, Any]
Compiled = Callable[[Row], Any]


class ExpressionError(ValueError):
    """The expression cannot be parsed, or names a function that does not exist."""


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<field>\$\{(?:\\.|[^}])*\})
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*)
  | (?P<op>==|!=|<=|>=|&&|\|\||[<>!(),])
""", re.VERBOSE)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])


def tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise ExpressionError(f"unexpected {source[position:position + 10]!r} at position {position} of {source!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            out.append((kind, match.group()))
        position = match.end()
    return out


def field_path(name: str) -> list[str]:
    """`a.b` → ["a", "b"]; `${First\\.Name}` (a dot escaped) → ["First.Name"]."""
    if name.startswith("${"):
        inner = name[2:-1]
        parts = re.split(r"(?<!\\)\.", inner)
        return [p.replace("\\.", ".") for p in parts]
    return name.split(".")


def lookup(row: Any, path: list[str]) -> Any:
    value = row
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items = tokens(source)
        self.at = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.at] if self.at < len(self.items) else None

    def take(self, text: str | None = None) -> tuple[str, str]:
        item = self.peek()
        if item is None or (text is not None and item[1] != text):
            raise ExpressionError(f"expected {text or 'more'} in {self.source!r}")
        self.at += 1
        return item

    def parse(self) -> Compiled:
        compiled = self.disjunction()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in {self.source!r}")  # type: ignore[index]
        return compiled

    def disjunction(self) -> Compiled:
        left = self.conjunction()
        while self.peek() in (("op", "||"), ("name", "or")):
            self.take()
            left = _either(left, self.conjunction())
        return left

    def conjunction(self) -> Compiled:
        left = self.negation()
        while self.peek() in (("op", "&&"), ("name", "and")):
            self.take()
            left = _both(left, self.negation())
        return left

    def negation(self) -> Compiled:
        if self.peek() in (("op", "!"), ("name", "not")):
            self.take()
            inner = self.negation()
            return lambda row: not _truth("not", inner(row))
        return self.comparison()

    def comparison(self) -> Compiled:
        left = self.primary()
        item = self.peek()
        if item is not None and item[1] in _COMPARE:
            self.take()
            op, right = _COMPARE[item[1]], self.primary()
            symbol = item[1]
            return lambda row: _compare(symbol, op, left(row), right(row))
        return left

    def primary(self) -> Compiled:
        kind, text = self.take()
        if kind == "string":
            value: Any = _unquote(text)
            return lambda row: value
        if kind == "number":
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda row: number
        if kind == "field":
            path = field_path(text)
            return lambda row: lookup(row, path)
        if kind == "op" and text == "(":
            inner = self.disjunction()
            self.take(")")
            return inner
        if kind == "name":
            if text in ("true", "false", "null"):
                constant = {"true": True, "false": False, "null": None}[text]
                return lambda row: constant
            if self.peek() == ("op", "("):
                return self.call(text)
            path = field_path(text)
            return lambda row: lookup(row, path)
        raise ExpressionError(f"unexpected {text!r} in {self.source!r}")

    def call(self, name: str) -> Compiled:
        function = FUNCTIONS.get(name.lower())
        if function is None:
            raise ExpressionError(f"unknown function {name!r} in {self.source!r}; known: {', '.join(sorted(FUNCTIONS))}")
        self.take("(")
        args: list[Compiled] = []
        if self.peek() != ("op", ")"):
            args.append(self.disjunction())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.disjunction())
        self.take(")")
        fname = name.lower()

        def run(row: Row) -> Any:
            values = [a(row) for a in args]
            try:
                return function(*values)
            except MappingFailure:
                raise
            except TypeError as exc:  # wrong number of arguments
                raise MappingFailure(fname, values, f"wrong arguments: {exc}") from None
            except (ValueError, ArithmeticError, OverflowError) as exc:
                raise MappingFailure(fname, values[0] if values else None, str(exc)) from None
        return run


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b), "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b), "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b), ">=": lambda a, b: bool(a >= b),
}


def _compare(symbol: str, op: Callable[[Any, Any], bool], a: Any, b: Any) -> bool:
    if symbol in ("==", "!="):
        return op(a, b)
    if isinstance(a, str) and isinstance(b, (int, float)) or isinstance(b, str) and isinstance(a, (int, float)):
        try:  # CSV cells are text: "42" > 18 compares as numbers
            a, b = float(a), float(b)
        except ValueError:
            raise MappingFailure(symbol, a if isinstance(a, str) else b, "cannot be compared with a number") from None
    try:
        return op(a, b)
    except TypeError:
        raise MappingFailure(symbol, a, f"cannot be compared with {b!r}") from None


def _either(a: Compiled, b: Compiled) -> Compiled:
    return lambda row: _truth("or", a(row)) or _truth("or", b(row))


def _both(a: Compiled, b: Compiled) -> Compiled:
    return lambda row: _truth("and", a(row)) and _truth("and", b(row))


def _truth(op: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise MappingFailure(op, value, "expects true or false")
    return value


def compile_expression(source: str) -> Compiled:
    return _Parser(source).parse()
