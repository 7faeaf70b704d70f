import base64

from gateway import device_id

SECRET = b"k" * 32


def alloy_read_ecid(value: str) -> str:
    """What the Web SDK does: URL-safe base64 → protobuf → field 1 (it stops there)."""
    raw = base64.b64decode(value.replace("_", "/").replace("-", "+") + "=" * (-len(value) % 4))
    assert raw[0] == 0x0A  # field 1, length-delimited
    return raw[2 : 2 + raw[1]].decode()


def test_minted_ids_are_38_digits_and_distinct() -> None:
    ids = {device_id.mint(0).ecid for _ in range(1000)}
    assert len(ids) == 1000 and all(device_id.is_ecid(i) for i in ids)


def test_only_ascii_digits_make_an_ecid() -> None:
    assert device_id.is_ecid("1" * 38)
    assert not device_id.is_ecid("\u0661" * 38)  # ARABIC-INDIC DIGIT ONE: isdigit() is true
    assert not device_id.is_ecid("\u00b9" * 38)  # SUPERSCRIPT ONE
    assert not device_id.is_ecid("1" * 37)


def test_round_trip_and_the_sdk_reads_the_same_ecid() -> None:
    device = device_id.mint(1_795_000_000)
    value = device_id.encode(device, SECRET)
    assert "=" not in value and "+" not in value and "/" not in value
    assert alloy_read_ecid(value) == device.ecid
    back = device_id.decode(value, SECRET)
    assert back is not None and back.ecid == device.ecid and back.created_at == device.created_at


def test_forged_garbled_and_foreign_values_are_refused() -> None:
    value = device_id.encode(device_id.mint(5), SECRET)
    assert device_id.decode(value, b"other secret") is None
    # Adobe's own cookie (unsigned) from the recorded traffic: readable by the SDK, not ours.
    adobe = "CiYyMzYxNDY2MjAxNzY3ODEyNzkzNTg3NzA2MjA5MjczNjA1NDc5OFILCIzl_6OgNBABGAE"
    assert alloy_read_ecid(adobe) == "23614662017678127935877062092736054798"
    assert device_id.decode(adobe, SECRET) is None
    for garbage in ["", "!!!", "AAAA", value[:-3], value[::-1], "Cg" * 40, "\u00e9"]:
        assert device_id.decode(garbage, SECRET) is None


def test_cookie_names_follow_the_sdk() -> None:
    assert device_id.cookie_name("DEMO@AdobeOrg") == "kndctr_DEMO_AdobeOrg_identity"
    assert device_id.cookie_name("DEMO@AdobeOrg", "consent") == "kndctr_DEMO_AdobeOrg_consent"
