"""Field rules shared by the event bodies (`protocol.bodies`): the enumerations, the bounds,
and the stateless checks of GS1 identities, organisation ids, names and codes. Each check
raises `ValidationError(code, message, field=...)` naming the field."""

from __future__ import annotations

import re

from .errors import Code, ValidationError

__all__ = [
    "BIZ_STEPS",
    "CHECKPOINTS",
    "DISPOSITIONS",
    "GOVERNANCE_KINDS",
    "MAX_ARGS_BYTES",
    "MAX_ATTACHMENTS",
    "MAX_CODE_BYTES",
    "MAX_CODE_CHARS",
    "MAX_FAULT_TYPES",
    "MAX_KEYS",
    "MAX_NAME_CHARS",
    "MAX_NODE_KEYS_PER_ORG",
    "MAX_PAYLOAD_BYTES",
    "MAX_VOTING_PERIOD_MS",
    "RESOLUTIONS",
    "RETURN_CONDITIONS",
    "ROLES",
    "TICKET_KINDS",
    "TICKET_UPDATE_STATUSES",
    "gtin_check_digit",
    "validate_gtin",
    "validate_org_id",
    "validate_serial",
]

ROLES = ("manufacturer", "retailer", "service_provider", "logistics", "auditor")
"""Roles of member organisations (customers are not members)."""
TICKET_KINDS = ("complaint", "repair", "refund", "inquiry", "return")
"""Kinds of tickets; ``return`` tickets are created by `ReturnRequest` only."""
BIZ_STEPS = (
    "commissioning", "shipping", "receiving", "retail_selling", "inspecting", "repairing", "replacing",
    "decommissioning",
)
"""EPCIS-style business steps of a trace record."""
DISPOSITIONS = (
    "active", "in_transit", "in_progress", "sellable", "retail_sold", "damaged", "recalled", "returned",
    "destroyed", "inactive",
)
"""EPCIS-style dispositions (the state a product is left in)."""
RESOLUTIONS = ("repaired", "replaced", "refunded", "advice", "no_fault_found", "other")
RETURN_CONDITIONS = ("as_new", "used", "damaged", "incomplete")
CHECKPOINTS = ("picked_up", "in_transit", "out_for_delivery", "delivered", "exception")
GOVERNANCE_KINDS = ("admit_member", "update_member", "remove_member", "validator_change", "policy_standard", "param_change")
"""What a proposal changes; its `payload` is: admit_member - an encoded `OrgRegister`;
update_member - an encoded `OrgUpdate`; remove_member - the org id (UTF-8);
validator_change - the complete new `protocol.block.ValidatorSet`, encoded;
policy_standard - a complete new `protocol.genesis.LedgerParams`, encoded;
param_change - an encoded `protocol.genesis.ParamChange` (new `ConsensusParams` and/or
`VmParams`). See `GovernancePropose.change` and, for when changes take effect, `node.ledger`."""
MAX_VOTING_PERIOD_MS = 90 * 24 * 3600 * 1000
TICKET_UPDATE_STATUSES = ("in_progress", "waiting_customer")

MAX_NAME_CHARS = 128
MAX_CODE_CHARS = 32
MAX_KEYS = 16
MAX_ATTACHMENTS = 16
MAX_FAULT_TYPES = 32
MAX_CODE_BYTES = 500 * 1024
"""Largest contract code; the envelope allows 512 KiB for a `contract.deploy` event."""
MAX_ARGS_BYTES = 16 * 1024
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_NODE_KEYS_PER_ORG = 8
"""Most node keys one organisation has registered at once (`NodeRegister`); also the most
keys one `node.register` / `node.remove` names."""

_ORG_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SERIAL = re.compile(r"^[A-Za-z0-9!\"%&'()*+,\-./:;<=>?_]{1,20}$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_VM_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,15}$")
_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _bad(field: str, text: str, code: Code = Code.FIELD_INVALID) -> ValidationError:
    return ValidationError(code, text, field=field)


def gtin_check_digit(first13: str) -> int:
    """GS1 mod-10 check digit of the first 13 digits of a GTIN-14."""
    digits = first13.encode()  # ASCII digits: byte - 48 is the digit
    total = 3 * sum(digits[0::2]) + sum(digits[1::2]) - 48 * (3 * 7 + 6)
    return (10 - total % 10) % 10


def validate_gtin(gtin: str, field: str = "gtin") -> None:
    if len(gtin) != 14 or not gtin.isascii() or not gtin.isdigit():
        raise _bad(field, f"a GTIN-14 is 14 digits, got {gtin[:20]!r}")
    if gtin_check_digit(gtin[:13]) != int(gtin[13]):
        raise _bad(field, f"GTIN {gtin} has a wrong check digit (expected {gtin_check_digit(gtin[:13])})")


def validate_serial(serial: str, field: str = "serial") -> None:
    if not _SERIAL.match(serial):
        raise _bad(field, "a serial is 1-20 characters of the GS1 character set 82")


def validate_org_id(org_id: str, field: str = "org_id") -> None:
    if not _ORG_ID.match(org_id):
        raise _bad(field, f"an organisation id is 1-64 characters of a-z 0-9 . _ - (got {org_id[:70]!r})")


def _name(value: str, field: str, *, empty: bool = False) -> None:
    if len(value) > MAX_NAME_CHARS or (not empty and not value.strip()):
        raise _bad(field, f"must be 1-{MAX_NAME_CHARS} characters, not blank")
    if not value.isprintable():
        raise _bad(field, "must not contain control characters")


def _code(value: str, field: str) -> None:
    if not _CODE.match(value):
        raise _bad(field, "a code is 1-32 characters of a-z 0-9 _ . - starting with a letter or digit")


def _one_of(value: str, allowed: tuple[str, ...], field: str) -> None:
    if value not in allowed:
        raise _bad(field, f"{value[:40]!r} is not one of {', '.join(allowed)}")


def _max_len(value: tuple[object, ...] | bytes, limit: int, field: str, *, minimum: int = 0) -> None:
    if not minimum <= len(value) <= limit:
        raise _bad(field, f"must have {minimum}..{limit} entries, got {len(value)}", Code.FIELD_OUT_OF_RANGE)


def _distinct(value: tuple[object, ...], field: str) -> None:
    if len(set(value)) != len(value):
        raise _bad(field, "entries must be distinct")


def _sorted_distinct(value: tuple[str, ...], field: str) -> None:
    if list(value) != sorted(set(value)):
        raise _bad(field, "entries must be sorted and distinct (canonical form)")


def _positive(value: int, field: str) -> None:
    if value == 0:
        raise _bad(field, "must be positive", Code.FIELD_OUT_OF_RANGE)


def _product(gtin: str, serial: str) -> None:
    validate_gtin(gtin)
    validate_serial(serial)
