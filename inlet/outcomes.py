"""Why an item was not accepted: one enum of stable snake_case names.

The same names appear in error bodies (`code`), dead-letter headers (`Inlet-Reason`), logs and
metrics, so an operator can follow one rejected item across all of them. Each reason has one
HTTP status, mapped here and nowhere else.
"""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    malformed_json = "malformed_json"
    invalid_message = "invalid_message"
    missing_field = "missing_field"
    missing_identity = "missing_identity"
    invalid_timestamp = "invalid_timestamp"
    org_mismatch = "org_mismatch"
    unknown_connection = "unknown_connection"
    unknown_dataset = "unknown_dataset"
    unknown_datastream = "unknown_datastream"
    origin_not_allowed = "origin_not_allowed"
    dataset_not_allowed = "dataset_not_allowed"
    message_too_large = "message_too_large"
    request_too_large = "request_too_large"
    too_many_messages = "too_many_messages"
    unsupported_media_type = "unsupported_media_type"
    too_deep = "too_deep"
    string_too_long = "string_too_long"
    rate_limited = "rate_limited"
    request_timeout = "request_timeout"
    unauthorized = "unauthorized"
    forbidden = "forbidden"
    not_found = "not_found"
    invalid_parameter = "invalid_parameter"
    unavailable = "unavailable"
    schema_mismatch = "schema_mismatch"
    # Worker side: the message was accepted but cannot be applied.
    undecodable = "undecodable"
    apply_failed = "apply_failed"


STATUS: dict[Reason, int] = {
    Reason.malformed_json: 400,
    Reason.invalid_message: 400,
    Reason.missing_field: 400,
    Reason.missing_identity: 400,
    Reason.invalid_timestamp: 400,
    Reason.org_mismatch: 400,
    Reason.unknown_connection: 404,
    Reason.unknown_dataset: 400,
    Reason.unknown_datastream: 400,
    Reason.origin_not_allowed: 403,
    Reason.dataset_not_allowed: 403,
    Reason.message_too_large: 413,
    Reason.request_too_large: 413,
    Reason.too_many_messages: 413,
    Reason.unsupported_media_type: 415,
    Reason.too_deep: 400,
    Reason.string_too_long: 400,
    Reason.rate_limited: 429,
    Reason.request_timeout: 408,
    Reason.unauthorized: 401,
    Reason.forbidden: 403,
    Reason.not_found: 404,
    Reason.invalid_parameter: 400,
    Reason.unavailable: 503,
    Reason.schema_mismatch: 400,
    Reason.undecodable: 400,
    Reason.apply_failed: 500,
}

TITLE: dict[Reason, str] = {
    Reason.malformed_json: "Malformed JSON",
    Reason.invalid_message: "Invalid XDM Message Format",
    Reason.missing_field: "Invalid XDM Message Format",
    Reason.missing_identity: "Missing identity",
    Reason.invalid_timestamp: "Invalid XDM Message Format",
    Reason.org_mismatch: "Organization mismatch",
    Reason.unknown_connection: "Unknown connection",
    Reason.unknown_dataset: "Unknown dataset",
    Reason.unknown_datastream: "Unknown datastream",
    Reason.origin_not_allowed: "Origin not allowed for this datastream",
    Reason.dataset_not_allowed: "Dataset not allowed for this connection",
    Reason.message_too_large: "Message too large",
    Reason.request_too_large: "Request too large",
    Reason.too_many_messages: "Too many messages",
    Reason.unsupported_media_type: "Unsupported media type",
    Reason.too_deep: "Document nested too deeply",
    Reason.string_too_long: "String too long",
    Reason.rate_limited: "Too many requests",
    Reason.request_timeout: "Request timeout",
    Reason.unauthorized: "Unauthorized",
    Reason.forbidden: "Forbidden",
    Reason.not_found: "Not found",
    Reason.invalid_parameter: "Invalid parameter",
    Reason.unavailable: "Service unavailable",
    Reason.schema_mismatch: "Schema mismatch",
    Reason.undecodable: "Undecodable message",
    Reason.apply_failed: "Message could not be applied",
}


class Rejected(Exception):
    """An item refused at a boundary, with the reason and a human sentence."""

    def __init__(self, reason: Reason, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS[self.reason]
