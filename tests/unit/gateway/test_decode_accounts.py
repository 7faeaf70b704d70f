"""Decoding records of the B2B classes: accounts (no person identity) and relations."""

import json

import pytest

from gateway.decode import decode_message
from gateway.publish import Publisher
from inlet import subjects
from inlet.config import Dataset, load
from inlet.messages import Record
from inlet.outcomes import Reason, Rejected

CONFIG = load({})
CONFIG.datasets += [Dataset(id="accounts", xdm_class="account"), Dataset(id="relations", xdm_class="account-person")]
DEMO = CONFIG.connection("demo")
assert DEMO is not None
IDS = {"identityMap": {"Email": [{"id": "ann@acme.example", "primary": True}]}}


def schema_of(dataset: str) -> str:
    """The schema the dataset names (docs/schemas.md): a message must name it in `schemaRef`."""
    found = CONFIG.dataset("prod", dataset)
    return found.schema if found and found.schema else "s"


def envelope(dataset: str, **xdm: object) -> bytes:
    header = {"schemaRef": {"id": schema_of(dataset)}, "imsOrgId": "DEMO@AdobeOrg", "datasetId": dataset}
    return json.dumps({"header": header, "body": {"xdmEntity": xdm}}).encode()


def record(dataset: str, **xdm: object) -> Record:
    message = decode_message(envelope(dataset, **xdm), CONFIG, DEMO, 1)
    assert isinstance(message, Record)
    return message


def test_an_account_record_needs_no_person_and_routes_by_its_key() -> None:
    account = record("accounts", accountKey={"sourceKey": " acme@1.crm "}, accountName="Acme")
    assert (account.record_class, account.account_key, account.identities) == ("account", "acme@1.crm", [])
    assert record("accounts", accountKey={"sourceID": "acme"}).account_key == "acme"
    publisher = Publisher.__new__(Publisher)
    publisher.partitions = 16
    expected = subjects.ingest("prod", "record", subjects.partition("account:acme@1.crm", 16))
    assert publisher.subject(account) == expected


def test_relations_and_person_records_carry_the_account_key() -> None:
    relation = record("relations", accountKey={"sourceKey": "acme"}, **IDS)
    assert (relation.record_class, relation.account_key, relation.identities[0].key) == (
        "account-person", "acme", "Email:ann@acme.example")
    person = record("demo-profiles", b2b={"accountKey": {"sourceKey": "acme"}}, **IDS)
    assert (person.record_class, person.account_key) == ("profile", "acme")
    assert record("demo-profiles", **IDS).account_key == ""


@pytest.mark.parametrize(("dataset", "xdm", "reason"), [
    ("accounts", {"accountName": "no key"}, Reason.missing_field),
    ("accounts", {"accountKey": {"sourceKey": "  "}}, Reason.missing_field),
    ("accounts", {"accountKey": "acme"}, Reason.invalid_message),
    ("relations", {"accountKey": {"sourceKey": "acme"}}, Reason.missing_identity),
    ("relations", IDS, Reason.missing_field),
    ("demo-profiles", {"b2b": {"accountKey": 5}, **IDS}, Reason.invalid_message),
])
def test_bad_b2b_records_are_refused(dataset: str, xdm: dict[str, object], reason: Reason) -> None:
    with pytest.raises(Rejected) as refused:
        decode_message(envelope(dataset, **xdm), CONFIG, DEMO, 1)
    assert refused.value.reason is reason
