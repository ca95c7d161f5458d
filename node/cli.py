"""The `afterchain` command line: keys, genesis, running a node, and (later) the client.

Exit codes (stable, scripts rely on them): 0 success / committed; 1 rejected (the node
refused the action; the code and message are printed); 2 usage or bad input (a bad
config, a missing file); 3 unreachable (no node answered); 4 timed out waiting.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from protocol.crypto import KeyPair
from protocol.errors import ProtocolError

from .keys import load_key, write_key

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_TIMEOUT = 4


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """afterchain: a shared ledger for after-sales service (nodes, keys, client, light client)."""


@cli.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Key file to write (mode 0600).")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen(out: Path, force: bool) -> None:
    """Create an Ed25519 key pair and write it to a key file; print the public key."""
    try:
        write_key(out, KeyPair.generate(), overwrite=force)
    except ProtocolError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(load_key(out).public.hex())


@cli.command()
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
def pubkey(key_file: Path) -> None:
    """Print the public key of KEY_FILE."""
    try:
        click.echo(load_key(key_file).public.hex())
    except ProtocolError as exc:
        raise click.ClickException(exc.message) from None


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
