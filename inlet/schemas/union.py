"""Profile's union view from schemas: the fields the Profile-enabled schemas declare, in the
notation of the observed union (`worker.profile.union_schema`: `a.b`, array items as `a[].b`,
`identityMap` as one `map`), so the two merge field by field."""

from __future__ import annotations

from typing import Any


def declared(schema: dict[str, Any]) -> frozenset[tuple[str, str]]:
    """The (leaf path, type) pairs a resolved schema declares, in the notation of `fields`:
    Profile's union view is the merge of its schemas, not only of what data has shown."""
    out: set[tuple[str, str]] = set()
    _declared(schema.get("properties", {}), "", out)
    return frozenset(out)


def _declared(properties: dict[str, Any], prefix: str, out: set[tuple[str, str]]) -> None:
    for key, field in properties.items():
        if not isinstance(field, dict):
            continue
        path, kind = prefix + key, field.get("type")
        if kind == "object":
            if field.get("properties"):
                _declared(field["properties"], path + ".", out)
            else:
                out.add((path, "map" if not prefix and key == "identityMap" else "object"))
        elif kind == "array":
            out.add((path, "array"))
            items = field.get("items", {})
            if isinstance(items, dict) and items.get("type") == "object" and items.get("properties"):
                _declared(items["properties"], path + "[].", out)
            elif isinstance(items, dict) and items.get("type"):
                out.add((path + "[]", str(items["type"])))
        elif isinstance(kind, str):
            out.add((path, kind))
