"""`afterchain gov ...` (alias `governance`): propose a change (validators, members, parameters,
the shared policy standard), vote on it with a validator key, show proposals and the
validator schedule. Durations on the command line (`duration_ms`, `DURATION`) are parsed here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click
from rich.table import Table

from afterchain.node.client import Client, InvalidInput, as_key
from afterchain.node.client.cli.common import (
    Common,
    console,
    customer_key,
    fmt_dur,
    fmt_ms,
    kv_table,
    read,
    reading,
    send,
    short,
    signing,
)
from afterchain.protocol import bodies as B
from afterchain.protocol.errors import ProtocolError
from afterchain.protocol.types import PublicKey

__all__ = ["DURATION", "duration_ms", "gov"]


_DURATION_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def duration_ms(text: str) -> int:
    """A duration such as ``90m``, ``12h``, ``30d``, ``1w``, ``1500ms`` (a bare number: ms) in ms."""
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):] or "ms"
    if unit not in _DURATION_UNITS_MS:
        raise click.BadParameter(f"{text!r}: the unit is one of {', '.join(_DURATION_UNITS_MS)}")
    try:
        value = float(num)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration like 30d, 12h, 90m") from None
    ms = int(value * _DURATION_UNITS_MS[unit])
    if ms <= 0:
        raise click.BadParameter(f"{text!r} must be positive")
    return ms


class _Duration(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return duration_ms(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


DURATION = _Duration()


@click.group("gov")
def gov() -> None:
    """Governance: propose a change, vote on it (validator keys), show proposals.

    Members and validators propose; only keys of the current validator set vote. A
    proposal is adopted when more than 2/3 of the current validators vote yes before its
    deadline (block time), rejected when 1/3 or more vote no, otherwise it expires with no
    effect. Validator and consensus changes take effect at a checkpoint boundary."""


@gov.group("propose")
def gov_propose() -> None:
    """Propose a change; prints the proposal id (= the event id)."""


def _proposing(f: Callable[..., Any]) -> Callable[..., Any]:
    """`signing` plus ``--voting-period``."""
    f = click.option("--voting-period", "voting_period_ms", type=DURATION, default="7d", show_default=True,
                     help="How long validators may vote (block time), e.g. 1h, 3d.")(f)
    return signing(f)


def _propose(c: Common, make: Callable[[Client], Any]) -> None:
    send(c, make, created="proposal_id", proposal=True)


def _current_set(cl: Client) -> list[str]:
    return list(cl.validators()["adopted"]["validators"])


@gov_propose.command("add-validator")
@click.argument("key_hex")
@_proposing
def gov_add_validator(c: Common, key_hex: str, voting_period_ms: int) -> None:
    """Add the node key KEY_HEX (64 hex) to the current validator set (appended)."""
    key = as_key(key_hex).hex()

    def make(cl: Client) -> Any:
        current = _current_set(cl)
        if key in current:
            raise InvalidInput("gov.no_change", f"{key[:16]}... is already a validator")
        return cl.build.governance_validator_change(validators=[*current, key], voting_period_ms=voting_period_ms)

    _propose(c, make)


@gov_propose.command("remove-validator")
@click.argument("key_hex")
@_proposing
def gov_remove_validator(c: Common, key_hex: str, voting_period_ms: int) -> None:
    """Remove the node key KEY_HEX from the current validator set."""
    key = as_key(key_hex).hex()

    def make(cl: Client) -> Any:
        current = _current_set(cl)
        if key not in current:
            raise InvalidInput("gov.no_change", f"{key[:16]}... is not a validator")
        if len(current) == 1:
            raise InvalidInput("gov.invalid", "the last validator cannot be removed")
        rest = [v for v in current if v != key]
        return cl.build.governance_validator_change(validators=rest, voting_period_ms=voting_period_ms)

    _propose(c, make)


def _roles(text: str) -> tuple[str, ...]:
    roles = tuple(sorted({r.strip() for r in text.split(",") if r.strip()}))
    bad = [r for r in roles if r not in B.ROLES]
    if not roles or bad:
        raise click.BadParameter(f"roles are a comma-separated subset of {', '.join(B.ROLES)}")
    return roles


def _keys(values: tuple[str, ...]) -> list[bytes]:
    return [customer_key(v) for v in values]


@gov_propose.command("admit-member")
@click.option("--org", "org_id", required=True, help="The new organisation's id (a-z 0-9 . _ -).")
@click.option("--name", required=True, help="Its display name.")
@click.option("--roles", required=True, help=f"Comma-separated roles: {', '.join(B.ROLES)}.")
@click.option("--member-key", "member_keys", multiple=True, required=True, metavar="KEY",
              help="Its event-signing public key (64 hex or a key file); repeatable.")
@_proposing
def gov_admit_member(c: Common, org_id: str, name: str, roles: str, member_keys: tuple[str, ...], voting_period_ms: int) -> None:
    """Admit a member organisation."""
    rs, ks = _roles(roles), _keys(member_keys)
    _propose(c, lambda cl: cl.build.governance_propose(
        kind="admit_member", voting_period_ms=voting_period_ms,
        payload=B.OrgRegister(org_id=org_id, name=name, roles=rs, keys=tuple(PublicKey(k) for k in ks)).encode()))


@gov_propose.command("remove-member")
@click.argument("org_id")
@_proposing
def gov_remove_member(c: Common, org_id: str, voting_period_ms: int) -> None:
    """Remove member ORG_ID (its keys are revoked; its history stays)."""
    _propose(c, lambda cl: cl.build.governance_propose(kind="remove_member", payload=org_id.encode(),
                                                       voting_period_ms=voting_period_ms))


@gov_propose.command("set-roles")
@click.argument("org_id")
@click.argument("roles")
@click.option("--member-key", "member_keys", multiple=True, metavar="KEY",
              help="Replace its keys with these (64 hex or key files; repeatable). Default: keep its keys.")
@_proposing
def gov_set_roles(c: Common, org_id: str, roles: str, member_keys: tuple[str, ...], voting_period_ms: int) -> None:
    """Set the roles of member ORG_ID (comma-separated), optionally its keys."""
    rs, ks = _roles(roles), _keys(member_keys)

    def make(cl: Client) -> Any:
        keys = ks or [bytes.fromhex(k) for k in cl.org(org_id)["keys"]]
        upd = B.OrgUpdate(org_id=org_id, roles=rs, keys=tuple(PublicKey(k) for k in keys))
        return cl.build.governance_propose(kind="update_member", payload=upd.encode(), voting_period_ms=voting_period_ms)

    _propose(c, make)


def _assignments(values: tuple[str, ...], cls: type, what: str) -> dict[str, int]:
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, int] = {}
    for v in values:
        k, sep, raw = v.partition("=")
        k = k.strip().replace("-", "_")
        if not sep or k not in names:
            raise click.BadParameter(f"{v!r}: use NAME=VALUE with NAME one of {', '.join(sorted(names))}", param_hint=what)
        try:
            out[k] = duration_ms(raw) if k.endswith("_ms") and not raw.strip().isdigit() else int(raw)
        except (ValueError, click.BadParameter):
            raise click.BadParameter(f"{v!r}: the value is an integer (or a duration for *_ms)", param_hint=what) from None
    return out


@gov_propose.command("params")
@click.option("--consensus", "consensus", multiple=True, metavar="NAME=VALUE",
              help="A consensus parameter, e.g. view_timeout_ms=2000 (repeatable).")
@click.option("--vm", "vm", multiple=True, metavar="NAME=VALUE", help="A VM parameter, e.g. max_gas_per_call=5000000.")
@_proposing
def gov_params(c: Common, consensus: tuple[str, ...], vm: tuple[str, ...], voting_period_ms: int) -> None:
    """Change consensus and/or VM parameters (the others keep their current values).

    Consensus parameters take effect at a checkpoint boundary (like validator changes), VM
    parameters from the block after adoption; checkpoint_interval and watermark_window are
    fixed at genesis."""
    from afterchain.protocol.genesis import ConsensusParams, VmParams
    from afterchain.protocol.jsonform import from_json

    if not consensus and not vm:
        raise click.UsageError("give at least one --consensus NAME=VALUE or --vm NAME=VALUE")
    cset = _assignments(consensus, ConsensusParams, "--consensus")
    vset = _assignments(vm, VmParams, "--vm")
    if "vms" in vset:
        raise click.BadParameter("the allowed VMs cannot be set from the command line", param_hint="--vm")

    def make(cl: Client) -> Any:
        cur = cl.params()
        try:
            cp = from_json(ConsensusParams, {**cur["consensus"], **cset}) if cset else None
            vp = from_json(VmParams, {**cur["vm"], **vset}) if vset else None
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        return cl.build.governance_param_change(consensus=cp, vm=vp, voting_period_ms=voting_period_ms)

    _propose(c, make)


@gov_propose.command("policy")
@click.option("--default-return-window", "return_window", type=DURATION, default=None,
              help="Return window when a product's policy sets none, e.g. 30d.")
@click.option("--auto-close-delay", "auto_close", type=DURATION, default=None,
              help="A resolved ticket closes itself this long after resolution, e.g. 7d.")
@click.option("--max-deadlines-per-block", "max_deadlines", type=click.IntRange(1), default=None,
              help="SLA deadlines processed at most per block.")
@_proposing
def gov_policy(c: Common, return_window: int | None, auto_close: int | None, max_deadlines: int | None,
               voting_period_ms: int) -> None:
    """Adopt a shared policy standard (chain-wide after-sales rules; from the next block)."""
    from afterchain.protocol.genesis import LedgerParams
    from afterchain.protocol.jsonform import from_json

    change = {k: v for k, v in (("default_return_window_ms", return_window), ("auto_close_delay_ms", auto_close),
                                ("max_deadlines_per_block", max_deadlines)) if v is not None}
    if not change:
        raise click.UsageError("give at least one of --default-return-window, --auto-close-delay, --max-deadlines-per-block")

    def make(cl: Client) -> Any:
        try:
            params = from_json(LedgerParams, {**cl.params()["ledger"], **change})
        except ProtocolError as exc:
            raise InvalidInput(str(exc.code), str(exc)) from None
        return cl.build.governance_policy_standard(params=params, voting_period_ms=voting_period_ms)

    _propose(c, make)


@gov.command("vote")
@click.argument("proposal_id")
@click.argument("choice", type=click.Choice(["yes", "no"]))
@signing
def gov_vote(c: Common, proposal_id: str, choice: str) -> None:
    """Vote yes or no on PROPOSAL_ID (--key: a current validator's node key, e.g. data/node.key)."""
    send(c, lambda cl: cl.build.governance_vote(proposal_id=proposal_id, approve=choice == "yes"), proposal=proposal_id)


def _proposal_rows(p: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("kind", p["kind"]), ("status", p["status"]), ("result", p.get("result")),
        ("change", json.dumps(p.get("payload"), sort_keys=True)),
        ("proposed by", p.get("by") or f"validator {short(p.get('by_key'))}"),
        ("created", f"{fmt_ms(p.get('created_ms'))} (block {p.get('height')})"), ("deadline", fmt_ms(p.get("deadline_ms"))),
        ("yes", ", ".join(short(v) for v in p["yes"]) or "-"), ("no", ", ".join(short(v) for v in p["no"]) or "-"),
    ]
    if p.get("current"):
        cur = p["current"]
        rows.append(("tally now", f"yes {cur['yes']}/{cur['yes_needed']} needed, no {cur['no']}/{cur['no_needed']} "
                                  f"to reject, of {cur['validators']} validators"))
    if p.get("tally"):
        t = p["tally"]
        rows.append(("tally", f"yes {t['yes']}, no {t['no']}, of {t['validators']} validators"))
    if p.get("decided_ms"):
        rows.append(("decided", f"{fmt_ms(p['decided_ms'])} (block {p.get('decided_height')})"))
    if p.get("effective_height"):
        rows.append(("effective from height", p["effective_height"]))
    return rows


@gov.command("show")
@click.argument("proposal_id", required=False)
@click.option("--status", type=click.Choice(["open", "adopted", "rejected", "expired", "failed"]), default=None,
              help="List only proposals in this status.")
@click.option("--validators", "show_validators", is_flag=True, help="Show the validator set and its schedule instead.")
@reading
def gov_show(c: Common, proposal_id: str | None, status: str | None, show_validators: bool) -> None:
    """Show one proposal, the list of proposals, or (--validators) the validator schedule."""
    if show_validators:
        def show_v(v: dict[str, Any]) -> None:
            t = Table(title=f"validator schedule (executed height {v['height']})", title_justify="left")
            for col in ("from height", "validators", "set hash", "view timeout", "block interval"):
                t.add_column(col)
            for e in v["schedule"]:
                t.add_row(str(e["first_height"]), "\n".join(e["validators"]), short(e["hash"]),
                          fmt_dur(e["consensus"]["view_timeout_ms"]), fmt_dur(e["consensus"]["block_interval_ms"]))
            console().print(t)
            p = v.get("pending")
            if p:
                click.echo(f"pending: {len(p['validators'])} validators from height {p['first_height']} (set {short(p['hash'])})")
            else:
                click.echo("pending: none")

        read(c, lambda cl: cl.validators(), show_v)
        return
    if proposal_id is not None:
        read(c, lambda cl: cl.proposal(proposal_id),
              lambda p: console().print(kv_table(f"proposal {p['id']}", _proposal_rows(p))))
        return

    def show(ps: list[dict[str, Any]]) -> None:
        t = Table(title=f"proposals{f' ({status})' if status else ''}", title_justify="left")
        for col in ("id", "kind", "status", "yes", "no", "deadline", "result"):
            t.add_column(col)
        for p in ps:
            t.add_row(short(p["id"]), p["kind"], p["status"], str(len(p["yes"])), str(len(p["no"])),
                      fmt_ms(p["deadline_ms"]), short(p.get("result"), 40))
        console().print(t)

    read(c, lambda cl: cl.proposals(status), show)
