"""Merge policies: how a profile's fragments become one entity, decided on every read.

Merging on read (not on write) means a new or edited merge policy applies to every profile at
once, and the same stored fragments can be viewed under several policies, as in AEP.
- `timestampOrdered`: per attribute, the most recently written value wins (ties: the dataset id
  that sorts last, so the result is deterministic).
- `dataSetPrecedence`: per attribute, the first dataset in `order` that has it wins; datasets
  not listed come after, newest first.
"""

from __future__ import annotations

from typing import Any

from inlet.config import MergePolicy
from worker.profile.store import Fragment


def merge(fragments: list[tuple[str, Fragment]], policy: MergePolicy) -> dict[str, Any]:
    """Leaf path → value, chosen across fragments by the policy (the largest key wins)."""
    return {path: value for path, (value, _, _) in merge_with_sources(fragments, policy).items()}


def merge_with_sources(fragments: list[tuple[str, Fragment]], policy: MergePolicy) -> dict[str, tuple[Any, str, int]]:
    """Leaf path → (value, dataset it came from, when it was written)."""
    rank = {dataset: i for i, dataset in enumerate(policy.order)}
    by_precedence = policy.attribute_merge == "dataSetPrecedence"
    best: dict[str, tuple[int, int, str]] = {}
    values: dict[str, tuple[Any, str, int]] = {}
    for dataset, fragment in fragments:
        precedence = -rank.get(dataset, len(rank)) if by_precedence else 0
        for path, field in fragment.fields.items():
            key = (precedence, field.ts, dataset)
            if path not in best or key > best[path]:
                best[path] = key
                values[path] = (field.value, dataset, field.ts)
    return values


def select(leaves: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """Keep the leaves at or below any of `fields` (dotted paths), AEP's `fields=`."""
    if not fields:
        return leaves
    return {
        path: value
        for path, value in leaves.items()
        if any(path == f or path.startswith(f + ".") for f in fields)
    }
