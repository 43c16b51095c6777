"""`imagechain node --password-file` (issue #10, finding 11): a validator's keystore unlocked
without an environment variable or a prompt. The node runs as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import pytest

from devnet.harness import eventually, free_port
from devnet.layout import devnet_spec
from node.keys import Keypair, Scheme
from node.keystore import PASSWORD_ENV, save_keystore

FAST = {"opslimit": argon2id.OPSLIMIT_MIN, "memlimit": argon2id.MEMLIMIT_MIN}


@pytest.fixture
def validator(tmp_path: Path) -> tuple[Keypair, Path, Path]:
    """A key of our own in a keystore, a local chain spec, and the password in a 0600 file."""
    keypair = Keypair.generate(Scheme.ED25519)
    save_keystore(tmp_path / "key.json", keypair, b"s3cret words", **FAST)
    (tmp_path / "chain.json").write_text(json.dumps(devnet_spec(1, 1000)))
    password = tmp_path / "password"
    password.write_text("s3cret words\n")  # as `echo` writes it: the newline is not part of it
    password.chmod(0o600)
    return keypair, tmp_path / "key.json", password


def node_command(tmp_path: Path, key: Path, password: Path, rpc_port: int) -> list[str]:
    return [sys.executable, "-m", "node", "node", "--chain", str(tmp_path / "chain.json"),
            "--base-path", str(tmp_path / "base"), "--no-network", "--rpc-port", str(rpc_port),
            "--prometheus-port", "0", "--validator", "--key", str(key), "--password-file", str(password)]  # fmt: skip


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop(PASSWORD_ENV, None)
    return env


def test_wrong_password_file_is_a_clean_error(tmp_path: Path, validator: tuple[Keypair, Path, Path]) -> None:
    _, key, password = validator
    password.write_text("not it\n")
    result = subprocess.run(node_command(tmp_path, key, password, 0), capture_output=True, text=True,
                            timeout=60, stdin=subprocess.DEVNULL, env=environment())  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "wrong password" in result.stderr and "Traceback" not in result.stderr
    assert "Password for" not in result.stderr, "a password file must not fall back to a prompt"


@pytest.mark.slow
def test_validator_starts_with_its_keystore_unlocked_by_a_password_file(
    tmp_path: Path, validator: tuple[Keypair, Path, Path]
) -> None:
    keypair, key, password = validator
    log = tmp_path / "node.log"
    with log.open("wb") as output:
        process = subprocess.Popen(node_command(tmp_path, key, password, free_port()), stdout=output,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment())  # fmt: skip
    try:
        eventually(lambda: f"Authority key: {keypair.address}" in log.read_text(), 60, "the node to start as the key")
        assert process.poll() is None, log.read_text()
    finally:
        process.terminate()
        process.wait(15)
