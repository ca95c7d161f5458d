"""Key files encrypted with a passphrase (Argon2id + secretbox): written 0600, read with the
passphrase from the caller, a file or the environment; refused without it, with a wrong
one, or when altered; `afterchain keygen --encrypt` and `pubkey` on the command line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from afterchain.node.cli import cli
from afterchain.node.common.keys import (
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    KeyFileError,
    is_encrypted,
    load_key,
    read_public,
    write_key,
)
from afterchain.protocol.crypto import KeyPair

PW = b"correct horse battery staple"


def secret(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_encrypted_key_round_trip_and_sources(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    p = write_key(tmp_path / "node.key", kp, passphrase=PW, kdf="interactive")
    assert oct(p.stat().st_mode & 0o777) == "0o600"
    text = p.read_text()
    assert text.startswith("afterchain-encrypted-key 1\n") and kp.seed.hex() not in text
    assert is_encrypted(p) and not is_encrypted(write_key(tmp_path / "plain.key", kp))
    assert read_public(p) == kp.public  # no passphrase needed for the public key
    assert load_key(p, passphrase=PW).seed == kp.seed
    pwf = secret(tmp_path / "pw", PW.decode() + "\n")  # one trailing newline is not part of it
    assert load_key(p, passphrase_file=pwf, env={}).seed == kp.seed
    assert load_key(p, env={ENV_PASSPHRASE_FILE: str(pwf)}).seed == kp.seed
    assert load_key(p, env={ENV_PASSPHRASE: PW.decode()}).seed == kp.seed
    # the explicit passphrase file wins over the environment
    assert load_key(p, passphrase_file=pwf, env={ENV_PASSPHRASE: "wrong"}).seed == kp.seed


def test_encrypted_key_refusals(tmp_path: Path) -> None:
    kp = KeyPair.generate()
    p = write_key(tmp_path / "node.key", kp, passphrase=PW, kdf="interactive")
    with pytest.raises(KeyFileError, match="is encrypted: give its passphrase"):
        load_key(p, env={})
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_key(p, passphrase=b"nope")
    with pytest.raises(KeyFileError, match="must not be readable by group or others"):
        load_key(p, passphrase_file=secret(tmp_path / "open-pw", PW.decode(), 0o644))
    with pytest.raises(KeyFileError, match="is empty"):
        load_key(p, passphrase_file=secret(tmp_path / "empty-pw", "\n"))
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(p, passphrase_file=tmp_path / "none")
    # altered: a flipped bit in the box fails authentication; a swapped public key is caught
    lines = p.read_text().splitlines()
    box = lines[4].split()[1]
    flipped = [*lines[:4], "box " + box[:-2] + ("00" if box[-2:] != "00" else "01")]
    altered = secret(tmp_path / "altered.key", "\n".join(flipped) + "\n")
    with pytest.raises(KeyFileError, match="wrong passphrase \\(or the file was altered\\)"):
        load_key(altered, passphrase=PW)
    other = KeyPair.generate().public.hex()
    swapped = secret(tmp_path / "swapped.key", p.read_text().replace(kp.public.hex(), other))
    with pytest.raises(KeyFileError, match="public key does not match"):
        load_key(swapped, passphrase=PW)
    truncated = secret(tmp_path / "truncated.key", "\n".join(lines[:3]) + "\n")
    with pytest.raises(KeyFileError, match="has the lines kdf, salt, public and box"):
        load_key(truncated, passphrase=PW)
    with pytest.raises(KeyFileError, match="passphrase is empty"):
        write_key(tmp_path / "x.key", kp, passphrase=b"", kdf="interactive")


def test_cli_keygen_encrypt_and_pubkey(tmp_path: Path) -> None:
    pwf = secret(tmp_path / "pw", "s3cret\n")
    out = tmp_path / "member.key"
    r = CliRunner().invoke(cli, ["keygen", "--out", str(out), "--encrypt", "--passphrase-file", str(pwf), "--kdf", "interactive"])
    assert r.exit_code == 0, r.output
    pub = r.output.strip()
    assert is_encrypted(out) and len(pub) == 64
    assert load_key(out, passphrase=b"s3cret").public.hex() == pub
    r = CliRunner().invoke(cli, ["pubkey", str(out)])
    assert r.exit_code == 0 and r.output.strip() == pub
    # from the environment, and refused without a passphrase and no terminal
    r = CliRunner(env={ENV_PASSPHRASE: "envpw"}).invoke(cli, ["keygen", "--out", str(tmp_path / "b.key"), "--encrypt",
                                                              "--kdf", "interactive"])
    assert r.exit_code == 0, r.output
    assert load_key(tmp_path / "b.key", passphrase=b"envpw").public.hex() == r.output.strip()
    r = CliRunner(env={ENV_PASSPHRASE: "", ENV_PASSPHRASE_FILE: ""}).invoke(
        cli, ["keygen", "--out", str(tmp_path / "c.key"), "--encrypt"])
    assert r.exit_code != 0 and "no terminal to ask on" in r.output
    assert not (tmp_path / "c.key").exists()
    r = CliRunner().invoke(cli, ["keygen", "--out", str(tmp_path / "d.key"), "--passphrase-file", str(pwf)])
    assert r.exit_code != 0 and "goes with --encrypt" in r.output
