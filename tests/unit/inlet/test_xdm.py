import msgspec
import pytest

from inlet import messages
from inlet.xdm import Identity, decode_head, identities


def test_identities_are_normalised_deduplicated_and_primary_first() -> None:
    head = decode_head(
        b'{"identityMap": {"ecid": [{"id": "123"}], "EMAIL": [{"id": " Ada@Shop.Example ", "primary": true},'
        b' {"id": "ada@shop.example"}], "loyalty": [{"id": "L1"}]}, "other": {"deep": [1, 2]}}'
    )
    assert identities(head) == [
        Identity("Email", "ada@shop.example", True),
        Identity("ECID", "123"),
        Identity("loyalty", "L1"),
    ]


@pytest.mark.parametrize(
    "doc",
    [b"[]", b'{"identityMap": []}', b'{"identityMap": {"Email": [{"id": ""}]}}', b'{"_id": 5}'],
)
def test_wrong_shapes_are_validation_errors(doc: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_head(doc)


def test_bus_messages_round_trip_with_raw_xdm_untouched() -> None:
    xdm = b'{"b": 1,  "a": [true]}'
    event = messages.Event(
        org="O", sandbox="prod", dataset="d", source="c", message_id="m", received_ms=1,
        timestamp_ms=2, identities=[Identity("Email", "x")], xdm=msgspec.Raw(xdm),
    )
    decoded = messages.decode(messages.encode(event))
    assert isinstance(decoded, messages.Event)
    assert bytes(decoded.xdm) == xdm
    assert decoded.identities == [Identity("Email", "x")]
    assert messages.kind_of(decoded) == "event"
