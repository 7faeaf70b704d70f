from hypothesis import given
from hypothesis import strategies as st

from inlet.config import MergePolicy
from worker.profile.fragments import flatten, unflatten
from worker.profile.merge import merge, select
from worker.profile.store import FieldValue, Fragment

names = st.text("abcxyz_", min_size=1, max_size=4)
leaves = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=3))
documents = st.recursive(leaves, lambda inner: st.dictionaries(names, inner, min_size=1, max_size=4), max_leaves=20)


@given(st.dictionaries(names, documents, max_size=5))
def test_flatten_then_unflatten_round_trips(document: dict) -> None:
    document = {k: v for k, v in document.items() if k not in {"_id", "identityMap", "timestamp"}}
    assert unflatten(flatten(document)) == document


def test_identity_fields_are_not_attributes() -> None:
    assert flatten({"_id": "x", "identityMap": {}, "timestamp": "t", "a": {"b": 1}}) == {"a.b": 1}


def test_merge_policies() -> None:
    frags = [
        ("crm", Fragment(1, {"name": FieldValue("Ada", 1), "city": FieldValue("London", 1)})),
        ("web", Fragment(2, {"name": FieldValue("ADA", 2)})),
    ]
    assert merge(frags, MergePolicy(id="t")) == {"name": "ADA", "city": "London"}
    precedence = MergePolicy(id="p", attribute_merge="dataSetPrecedence", order=["crm"])
    assert merge(frags, precedence) == {"name": "Ada", "city": "London"}
    assert select({"a.b": 1, "a.c": 2, "ab": 3}, ["a"]) == {"a.b": 1, "a.c": 2}
