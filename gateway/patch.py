"""PATCH bodies for configuration documents, in every form Adobe's documentation shows:

- a JSON Patch array (RFC 6902: `add`, `replace`, `remove`), as AEP's APIs take;
- a single JSON Patch operation sent as an object (`{"op": "add", "path": "/default",
  "value": "true"}`), as the merge policies page shows it;
- a JSON merge patch object (RFC 7396), as the computed attributes page shows it.

With `dotted=True` a path segment may name nested fields with dots (`/identityGraph.type`),
the spelling the merge policies page documents. Applied to the stored document as plain data;
the caller validates the result as a whole, so a patch can never leave behind a document that
a POST would have refused, and a path that names nothing is refused rather than ignored (a
write that changes nothing must never look like one that worked).
"""

from __future__ import annotations

from typing import Any

from inlet.outcomes import Reason, Rejected

OPERATIONS = ("add", "replace", "remove")
_OPERATION_KEYS = {"op", "path", "value", "from"}


def is_operation(patch: Any) -> bool:
    """A lone JSON Patch operation object rather than a merge patch."""
    return isinstance(patch, dict) and "op" in patch and "path" in patch and set(patch) <= _OPERATION_KEYS


def patched(document: dict[str, Any], patch: Any, dotted: bool = False) -> dict[str, Any]:
    if is_operation(patch):
        patch = [patch]
    if isinstance(patch, dict):
        return _merge_patch(document, patch)
    if not isinstance(patch, list) or not patch:
        raise Rejected(Reason.invalid_message, "PATCH takes a JSON Patch array, one operation, or an object")
    for op in patch:
        if not isinstance(op, dict) or op.get("op") not in OPERATIONS or not isinstance(op.get("path"), str):
            raise Rejected(Reason.invalid_message, f"unsupported patch operation {op!r}; use add, replace or remove")
        if op["op"] != "remove" and "value" not in op:
            raise Rejected(Reason.invalid_message, f"patch operation {op['op']} on {op['path']!r} needs a value")
        *parents, last = _segments(op["path"], dotted)
        node = document
        for part in parents:
            child = node.get(part)
            if child is None and op["op"] == "add":
                child = node[part] = {}
            if not isinstance(child, dict):
                raise Rejected(Reason.invalid_message, f"patch path {op['path']!r} does not exist")
            node = child
        if op["op"] in ("remove", "replace") and last not in node:
            raise Rejected(Reason.invalid_message, f"patch path {op['path']!r} does not exist")
        if op["op"] == "remove":
            del node[last]
        else:
            node[last] = op["value"]
    return document


def _segments(path: str, dotted: bool) -> list[str]:
    if not path.startswith("/") or path == "/":
        raise Rejected(Reason.invalid_message, f"patch path {path!r} must be a JSON pointer such as /name")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
    if dotted:
        parts = [piece for part in parts for piece in part.split(".")]
    if any(not p for p in parts):
        raise Rejected(Reason.invalid_message, f"patch path {path!r} has an empty segment")
    return parts


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge_patch(target[k], v)
        else:
            target[k] = v
    return target
