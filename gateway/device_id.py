"""Device ids (ECIDs) and the `kndctr_<org>_identity` value that carries them.

The value is what Adobe's Web SDK expects: URL-safe base64 of a protobuf
`Identity { string ecid = 1; IdentityMetadata metadata = 10; }`, which the SDK decodes itself
to read the ECID (it stops at field 1). We append field 15, an HMAC of the ECID and its
creation time under a secret shared by all gateways: a value we did not mint (forged, garbled,
or signed with another secret) is simply replaced by a fresh id, never answered with an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

ECID_DIGITS = 38
IDENTITY_MAX_AGE = 34_128_000  # seconds (395 days), as Adobe's edge
DEVICE_BROWSER = 1
_SIGNATURE_FIELD = 15


@dataclass(frozen=True)
class DeviceId:
    ecid: str
    created_at: int  # seconds
    is_new: bool


def mint(now_s: int) -> DeviceId:
    """38 decimal digits from a CSPRNG (about 126 bits), first digit non-zero."""
    value = secrets.randbelow(9 * 10 ** (ECID_DIGITS - 1)) + 10 ** (ECID_DIGITS - 1)
    return DeviceId(str(value), now_s, True)


def is_ecid(value: str) -> bool:
    # isascii: str.isdigit() also accepts other scripts' digits (and superscripts).
    return len(value) == ECID_DIGITS and value.isascii() and value.isdigit()


def cookie_name(org: str, suffix: str = "identity") -> str:
    return f"kndctr_{org.replace('@', '_')}_{suffix}"


def encode(device: DeviceId, secret: bytes) -> str:
    metadata = _varint_field(1, device.created_at) + _varint_field(2, int(device.is_new))
    metadata += _varint_field(3, DEVICE_BROWSER)
    body = _bytes_field(1, device.ecid.encode()) + _bytes_field(10, metadata)
    body += _bytes_field(_SIGNATURE_FIELD, _sign(device.ecid, device.created_at, secret))
    return base64.urlsafe_b64encode(body).rstrip(b"=").decode()


def decode(value: str, secret: bytes) -> DeviceId | None:
    """The device id in a value we minted, else None (never raises on bad input)."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        fields = _parse(raw)
        ecid = fields[1].decode()
        created_at = _parse_varints(fields[10]).get(1, 0)
        signature = fields[_SIGNATURE_FIELD]
    except (ValueError, KeyError, IndexError, UnicodeDecodeError):
        return None
    if not is_ecid(ecid) or not hmac.compare_digest(signature, _sign(ecid, created_at, secret)):
        return None
    return DeviceId(ecid, created_at, False)


def _sign(ecid: str, created_at: int, secret: bytes) -> bytes:
    return hmac.new(secret, f"{ecid}:{created_at}".encode(), hashlib.sha256).digest()[:16]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _parse(data: bytes) -> dict[int, bytes]:
    """Length-delimited fields by number (varint fields are skipped)."""
    fields: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            fields[number] = data[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return fields


def _parse_varints(data: bytes) -> dict[int, int]:
    values: dict[int, int] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        if tag & 7 != 0:
            raise ValueError("unexpected wire type")
        values[tag >> 3], pos = _read_varint(data, pos)
    return values
