"""PATCH bodies for configuration documents: a JSON Patch array (RFC 6902: add, replace,
remove), as AEP's APIs take, or a JSON merge patch object (RFC 7396). Applied to the stored
document as plain data; the caller validates the result as a whole, so a patch can never
leave behind a document that a POST would have refused."""

from __future__ import annotations

from typing import Any

from inlet.outcomes import Reason, Rejected


def patched(document: dict[str, Any], patch: Any) -> dict[str, Any]:
    if isinstance(patch, dict):
        return _merge_patch(document, patch)
    if not isinstance(patch, list):
        raise Rejected(Reason.invalid_message, "PATCH takes a JSON Patch array or an object")
    for op in patch:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove") or not isinstance(op.get("path"), str):
            raise Rejected(Reason.invalid_message, f"unsupported patch operation {op!r}")
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        node = document
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                raise Rejected(Reason.invalid_message, f"patch path {op['path']!r} does not exist")
            node = child
        if op["op"] == "remove":
            node.pop(last, None)
        else:
            node[last] = op.get("value")
    return document


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge_patch(target[k], v)
        else:
            target[k] = v
    return target
