"""`afterchain contract ...`: deploy contract code, call an entry point.
"""

from __future__ import annotations

from pathlib import Path

import click

from afterchain.node.client.cli.common import Common, send, signing

__all__ = ["contract"]


@click.group()
def contract() -> None:
    """Contracts: deploy code, call an entry point."""


@contract.command("deploy")
@click.argument("code_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--vm", "vm_id", type=click.Choice(["lua", "wasm"]), required=True)
@click.option("--vm-version", type=int, default=1, show_default=True)
@click.option("--name", required=True, help="Contract name.")
@signing
def contract_deploy(c: Common, code_file: str, vm_id: str, vm_version: int, name: str) -> None:
    """Deploy contract code from CODE_FILE; prints the contract id."""
    code = Path(code_file).read_bytes()
    send(
        c,
        lambda cl: cl.build.contract_deploy(vm_id=vm_id, vm_version=vm_version, name=name, code=code),
        created="contract_id",
    )


@contract.command("call")
@click.argument("contract_id")
@click.argument("entry")
@click.option("--args-hex", default="", help="msgpack-encoded arguments, hex.")
@click.option("--gas", "gas_limit", type=click.IntRange(1), default=1_000_000, show_default=True)
@signing
def contract_call(c: Common, contract_id: str, entry: str, args_hex: str, gas_limit: int) -> None:
    """Call ENTRY of a deployed contract."""
    try:
        args = bytes.fromhex(args_hex)
    except ValueError:
        raise click.BadParameter("not hex", param_hint="--args-hex") from None
    send(c, lambda cl: cl.build.contract_call(contract_id=contract_id, entry=entry, args=args, gas_limit=gas_limit))
