"""The `afterchain` console entry: keys, genesis and running a node here; the client groups
(`node.client.cli.commands`) and the light client (`node.client.light.cli`) are registered
on first need.

Exit codes (stable, scripts rely on them): 0 success / committed; 1 rejected (the node
refused the action; the code and message are printed); 2 usage or bad input (a bad
config, a missing file); 3 unreachable (no node answered); 4 timed out waiting.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from afterchain.node.common.keys import (
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    KDF_LIMITS,
    read_passphrase,
    read_public,
    write_key,
)
from afterchain.node.common.version import PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS
from afterchain.protocol.crypto import KeyPair
from afterchain.protocol.errors import ProtocolError

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4
EXIT_DIVERGED = 5
"""`node run`: the node stopped because the chain certifies a state (or an event) this
node does not agree with (`StateDivergence`, `CertifiedBlockInvalid`)."""
EXIT_STORAGE = 6
"""`node run`: the node stopped because its disk failed it (`StorageFault`: disk full, a
failed write or fsync, a corrupted or truncated data file); docs/OPERATIONS.md, "Storage
faults"."""


class _LazyGroup(click.Group):
    """The top-level group: the client and light-client command groups are registered on
    first need (an unknown name, `--help`), so `afterchain node run` starts without
    importing them (rich, httpx, the client): they would only slow a node's start-up."""

    _registered = False

    def _register(self) -> None:
        if not self._registered:
            self._registered = True
            from afterchain.node.client.cli.commands import register
            from afterchain.node.client.light.cli import register as register_light

            register(self)
            register_light(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and not self._registered:
            self._register()
            cmd = super().get_command(ctx, cmd_name)
        return cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._register()
        return super().list_commands(ctx)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="afterchain", prog_name="afterchain",
                      message=f"%(prog)s %(version)s (protocol {PROTOCOL_VERSION}; speaks "
                              f"{', '.join(map(str, SUPPORTED_PROTOCOL_VERSIONS))})")
def cli() -> None:
    """afterchain: a shared ledger for after-sales service (nodes, keys, client, light client)."""


def _new_passphrase(passphrase_file: Path | None) -> bytes:
    import os

    if passphrase_file is not None:
        return read_passphrase(passphrase_file)
    if os.environ.get(ENV_PASSPHRASE_FILE):
        return read_passphrase(os.environ[ENV_PASSPHRASE_FILE])
    if os.environ.get(ENV_PASSPHRASE):
        return os.environ[ENV_PASSPHRASE].encode()
    if not sys.stdin.isatty():
        raise click.UsageError(f"--encrypt: give the passphrase with --passphrase-file, ${ENV_PASSPHRASE_FILE} or "
                               f"${ENV_PASSPHRASE} (no terminal to ask on)")
    text: str = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True)
    if not text:
        raise click.UsageError("the passphrase is empty")
    return text.encode()


@cli.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Key file to write (mode 0600).")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
@click.option("--encrypt", is_flag=True,
              help=f"Encrypt the key file with a passphrase (Argon2id + secretbox), read from --passphrase-file, "
                   f"${ENV_PASSPHRASE_FILE}, ${ENV_PASSPHRASE} or asked for on the terminal.")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --encrypt: a file holding the passphrase (mode 0600; one trailing newline ignored).")
@click.option("--kdf", type=click.Choice(list(KDF_LIMITS)), default="moderate", show_default=True,
              help="With --encrypt: the Argon2id work limits (moderate: 256 MiB, ~1.6 s to open on a small server).")
def keygen(out: Path, force: bool, encrypt: bool, passphrase_file: Path | None, kdf: str) -> None:
    """Create an Ed25519 key pair and write it to a key file; print the public key."""
    if passphrase_file is not None and not encrypt:
        raise click.UsageError("--passphrase-file goes with --encrypt")
    try:
        passphrase = _new_passphrase(passphrase_file) if encrypt else None
        key = KeyPair.generate()
        write_key(out, key, overwrite=force, passphrase=passphrase, kdf=kdf)
        click.echo(read_public(out).hex())
    except ProtocolError as exc:
        raise click.ClickException(exc.message) from None


@cli.command()
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def pubkey(key_file: Path) -> None:
    """Print the public key of KEY_FILE (an encrypted one too: no passphrase needed)."""
    try:
        click.echo(read_public(key_file).hex())
    except ProtocolError as exc:
        raise click.ClickException(exc.message) from None


@cli.group()
def node() -> None:
    """Run a node."""


@node.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The node's TOML configuration (see docs/OPERATIONS.md).")
def node_run(config_path: Path) -> None:
    """Run a validator node until SIGTERM / Ctrl-C."""
    import trio

    from afterchain.node.common.rocks import StorageFault, set_storage_fault_handler
    from afterchain.node.runtime.config import ConfigError, load_config
    from afterchain.node.runtime.executor import StateDivergence
    from afterchain.node.runtime.member import CertifiedBlockInvalid
    from afterchain.node.server import run_node
    from afterchain.node.transport.p2p import AddressError

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"bad config {config_path}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    set_storage_fault_handler(_stop_on_storage_fault)
    try:
        trio.run(run_node, config)
    except (ValueError, ProtocolError) as exc:
        # the node's log is set up by now: the reason is a line of it (JSON in JSON mode)
        from afterchain.node.common.log import get_logger

        get_logger().error("node_start_failed", error=str(exc), hint="cannot start the node; fix and retry")
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        pass
    except BaseExceptionGroup as eg:
        bad = eg.subgroup(lambda e: isinstance(e, AddressError))
        if bad is not None:  # p2p.listen names a host this machine cannot resolve
            while isinstance(bad, BaseExceptionGroup):
                bad = bad.exceptions[0]
            click.echo(f"cannot start the node: p2p.listen: {bad}", err=True)
            sys.exit(EXIT_USAGE)
        fault = eg.subgroup(lambda e: isinstance(e, StorageFault))
        if fault is not None:  # (the handler stops the process first; this is the fallback)
            while isinstance(fault, BaseExceptionGroup):
                fault = fault.exceptions[0]
            click.echo(f"node stopped: {fault}", err=True)
            sys.exit(EXIT_STORAGE)
        stop = eg.subgroup(lambda e: isinstance(e, StateDivergence | CertifiedBlockInvalid))
        if stop is None:
            raise
        while isinstance(stop, BaseExceptionGroup):
            stop = stop.exceptions[0]
        click.echo(f"node stopped: {stop}", err=True)
        sys.exit(EXIT_DIVERGED)


def _stop_on_storage_fault(fault: Exception) -> None:
    """`node run`'s storage fault handler: say why on stderr and stop the process at once
    (exit code 6), from whichever thread met the fault. Nothing else runs: no vote is
    sent, no block executed and no answer given on top of a write that may not be on disk
    (the fault is logged before, as ``storage_fault``)."""
    import os

    try:
        click.echo(f"node stopped: {fault}", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(EXIT_STORAGE)


def _load_node_config(config_path: Path) -> object:
    from afterchain.node.runtime.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        click.echo(f"bad config {config_path}: {exc}", err=True)
        sys.exit(EXIT_USAGE)


@node.command("snapshot")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The running node's TOML configuration.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Directory to write (absent or empty; on the node's machine).")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True,
              help="Seconds to wait for the node's answer.")
def node_snapshot(config_path: Path, out: Path, timeout_s: float) -> None:
    """Write an online, consistent snapshot of a running node's data (docs/OPERATIONS.md,
    "Backups and upgrades"): the node checkpoints its stores through its admin API, then
    this command brings the copy to the state a certified header commits to and writes the
    manifest."""
    import httpx

    from afterchain.node.app.vm.agreements import VmAgreementHooks, VmContractHost
    from afterchain.node.common.files import load_genesis
    from afterchain.node.http.admin import load_admin_token
    from afterchain.node.runtime.config import NodeConfig
    from afterchain.node.runtime.snapshot import SnapshotError, finish_snapshot

    config = _load_node_config(config_path)
    assert isinstance(config, NodeConfig)
    out = out.resolve()
    try:
        genesis = load_genesis(config.genesis_file)
        token = load_admin_token(config.api.admin_token_file)
    except (ValueError, OSError, ProtocolError) as exc:
        click.echo(f"cannot read the node's files: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(config.api.host, config.api.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{config.api.port}/v1/admin/snapshot"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.post(url, json={"dir": str(out)}, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException:
        click.echo(f"the node at {url} did not answer within {timeout_s:g} s", err=True)
        sys.exit(EXIT_TIMEOUT)
    except httpx.HTTPError as exc:
        click.echo(f"the node's API at {url} does not answer ({exc}); a snapshot is taken from a running node "
                   "(a stopped node's data directory can be copied as it is)", err=True)
        sys.exit(EXIT_UNREACHABLE)
    if r.status_code != 200:
        try:
            err = r.json().get("error", {})
            why = f"{err.get('code')}: {err.get('message')}"
        except ValueError:
            why = r.text[:200]
        click.echo(f"the node refused the snapshot ({r.status_code} {why})", err=True)
        sys.exit(EXIT_REJECTED)
    taken = r.json()
    host_ = VmContractHost()
    try:
        m = finish_snapshot(out, genesis, hooks=VmAgreementHooks(host_), contracts=host_)
    except (SnapshotError, ProtocolError) as exc:
        click.echo(f"cannot finish the snapshot in {out}: {exc}", err=True)
        sys.exit(EXIT_REJECTED)
    click.echo(f"snapshot {out}: state at height {m['state_height']} (root {m['state_root'][:16]}...), chain to "
               f"{m['chain_height']}, certified; checkpoint taken at state {taken['state_height']}")


@node.command("restore")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The configuration of the node to restore (its data_dir must be absent or empty).")
@click.option("--from", "src", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True,
              help="A snapshot directory written by `afterchain node snapshot`.")
@click.option("--max-age-days", type=float, default=None,
              help="Refuse a snapshot whose certified header is older than this many days (default: any age).")
def node_restore(config_path: Path, src: Path, max_age_days: float | None) -> None:
    """Lay a snapshot into an empty data directory after checking it: its header against the
    genesis and the validator-set chain, its blocks against that header, its state against
    the certified state root. A refused snapshot writes nothing."""
    import time

    from afterchain.node.common.files import load_genesis
    from afterchain.node.runtime.config import NodeConfig
    from afterchain.node.runtime.snapshot import SnapshotError, restore_snapshot

    config = _load_node_config(config_path)
    assert isinstance(config, NodeConfig)
    try:
        genesis = load_genesis(config.genesis_file)
    except (ValueError, OSError, ProtocolError) as exc:
        click.echo(f"cannot read the genesis file: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        info = restore_snapshot(src, config.data_dir, genesis, now_ms=int(time.time() * 1000),
                                max_age_ms=None if max_age_days is None else int(max_age_days * 86_400_000),
                                progress=lambda m: click.echo(f"  {m}"))
    except SnapshotError as exc:
        click.echo(f"snapshot refused, nothing written: {exc}", err=True)
        sys.exit(EXIT_REJECTED)
    click.echo(f"restored {config.data_dir}: state at height {info.state_height} ({info.values} values), chain to "
               f"{info.chain_height}; start the node to follow the chain from there")


def _parse_member(text: str) -> tuple[str, str, tuple[str, ...], tuple[bytes, ...], int]:
    parts = text.split(",")
    if len(parts) not in (4, 5):
        raise click.BadParameter(f"{text!r}: expected ORG_ID,NAME,ROLE[+ROLE...],KEYHEX[+KEYHEX...][,BALANCE]")
    try:
        keys = tuple(bytes.fromhex(k) for k in parts[3].split("+"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: a key is not hex") from None
    try:
        balance = int(parts[4]) if len(parts) == 5 else 0
    except ValueError:
        raise click.BadParameter(f"{text!r}: the balance is not an integer") from None
    return parts[0], parts[1], tuple(parts[2].split("+")), keys, balance


@cli.command()
@click.option("--chain-id", required=True, help="The chain's id (a-z 0-9 . _ -).")
@click.option("--validator", "validators", multiple=True, required=True, help="A validator's public key (hex); repeat.")
@click.option("--member", "members", multiple=True, required=True,
              help="ORG_ID,NAME,ROLE[+ROLE],KEYHEX[+KEYHEX][,BALANCE]; repeat. Roles: manufacturer, retailer, "
                   "service_provider, logistics, auditor.")
@click.option("--time-ms", type=int, default=None, help="Genesis time in ms since the epoch (default: now).")
@click.option("--view-timeout-ms", type=int, default=None, help="PBFT view timeout (default 2000).")
@click.option("--block-interval-ms", type=int, default=None, help="Minimum time between blocks (default 100).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Genesis JSON file to write.")
def genesis(chain_id: str, validators: tuple[str, ...], members: tuple[str, ...], time_ms: int | None,
            view_timeout_ms: int | None, block_interval_ms: int | None, out: Path) -> None:
    """Write a genesis file: chain id, validators, members with roles and keys, parameters."""
    import dataclasses
    import time

    from afterchain.node.tools.genesis import DEFAULT_CONSENSUS, MemberSpec, build_genesis

    try:
        vkeys = [bytes.fromhex(v) for v in validators]
    except ValueError:
        raise click.BadParameter("a validator key is not hex", param_hint="--validator") from None
    specs = [MemberSpec(*_parse_member(m)) for m in members]
    consensus = DEFAULT_CONSENSUS
    changes = {k: v for k, v in (("view_timeout_ms", view_timeout_ms), ("block_interval_ms", block_interval_ms)) if v is not None}
    if changes:
        consensus = dataclasses.replace(consensus, **changes)
    try:
        g = build_genesis(chain_id=chain_id, genesis_time_ms=time_ms if time_ms is not None else int(time.time() * 1000),
                          validators=vkeys, members=specs, consensus=consensus)
    except ProtocolError as exc:
        raise click.ClickException(f"invalid genesis: {exc}") from None
    out.write_text(g.to_json() + "\n")
    click.echo(f"wrote {out}: chain {g.chain_id}, {g.validators.n} validators, {len(g.members)} members, hash {g.hash().hex()}")




def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if exc.exit_code in (1, 2) else exc.exit_code)
    except SystemExit:
        raise


if __name__ == "__main__":
    main()
