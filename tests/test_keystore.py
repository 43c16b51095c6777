"""Tests for node.keystore and the `key` CLI group."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
import pytest
from click.testing import CliRunner

from node.commands.key import key_group
from node.keys import Keypair, Scheme, dev_keypair
from node.keystore import (
    PASSWORD_ENV,
    KeystoreError,
    load_keystore,
    load_signer,
    read_password_file,
    save_keystore,
)

FAST = {"opslimit": argon2id.OPSLIMIT_INTERACTIVE, "memlimit": argon2id.MEMLIMIT_INTERACTIVE}
PASSWORD = b"correct horse battery staple"


@pytest.fixture(autouse=True)
def _no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.fixture(scope="module")
def keystore_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One ed25519 keystore, made once: each Argon2id run costs a few hundred milliseconds."""
    path = tmp_path_factory.mktemp("ks") / "alice.json"
    save_keystore(path, dev_keypair("//Alice"), PASSWORD, **FAST)
    return path.read_text()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "key.json"
    path.write_text(text)
    return path


def edited(keystore_text: str, **changes: object) -> str:
    document = json.loads(keystore_text)
    for dotted, value in changes.items():
        target = document
        *parents, name = dotted.split("__")
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[name]
        else:
            target[name] = value
    return json.dumps(document)


# ---------------------------------------------------------------------------------------------
# Round trips and file format
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(Scheme))
def test_round_trip(tmp_path: Path, scheme: Scheme) -> None:
    keypair = Keypair.generate(scheme)
    path = tmp_path / "k.json"
    save_keystore(path, keypair, PASSWORD, **FAST)
    loaded = load_keystore(path, PASSWORD)
    assert loaded.scheme is scheme
    assert loaded.seed == keypair.seed
    assert loaded.address == keypair.address
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_format(keystore_text: str) -> None:
    document = json.loads(keystore_text)
    assert set(document) == {"version", "scheme", "address", "kdf", "cipher", "nonce", "ciphertext"}
    assert document["version"] == 1
    assert document["scheme"] == "ed25519"
    assert document["address"] == dev_keypair("//Alice").address
    assert document["cipher"] == "xsalsa20poly1305"
    assert document["kdf"]["name"] == "argon2id"
    assert document["kdf"]["opslimit"] == argon2id.OPSLIMIT_INTERACTIVE
    assert document["kdf"]["memlimit"] == argon2id.MEMLIMIT_INTERACTIVE
    assert len(bytes.fromhex(document["kdf"]["salt"])) == 16
    assert len(bytes.fromhex(document["nonce"])) == 24
    assert dev_keypair("//Alice").seed.hex() not in keystore_text


def test_default_limits_are_moderate() -> None:
    import inspect

    defaults = inspect.signature(save_keystore).parameters
    assert defaults["opslimit"].default == argon2id.OPSLIMIT_MODERATE
    assert defaults["memlimit"].default == argon2id.MEMLIMIT_MODERATE


def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    first, second = Keypair.generate(Scheme.ED25519), Keypair.generate(Scheme.ED25519)
    save_keystore(path, first, PASSWORD, **FAST)
    with pytest.raises(KeystoreError, match="already exists"):
        save_keystore(path, second, PASSWORD, **FAST)
    assert load_keystore(path, PASSWORD).seed == first.seed
    save_keystore(path, second, PASSWORD, overwrite=True, **FAST)
    assert load_keystore(path, PASSWORD).seed == second.seed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in tmp_path.iterdir()] == ["k.json"]


def test_empty_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="non-empty"):
        save_keystore(tmp_path / "k.json", dev_keypair("//Bob"), b"", **FAST)


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------


def test_wrong_password(tmp_path: Path, keystore_text: str) -> None:
    path = write(tmp_path, keystore_text)
    with pytest.raises(KeystoreError, match="wrong password or corrupted keystore"):
        load_keystore(path, b"not the password")


def test_corrupted_ciphertext(tmp_path: Path, keystore_text: str) -> None:
    ciphertext = json.loads(keystore_text)["ciphertext"]
    flipped = ("1" if ciphertext[0] == "0" else "0") + ciphertext[1:]
    path = write(tmp_path, edited(keystore_text, ciphertext=flipped))
    with pytest.raises(KeystoreError, match="wrong password or corrupted keystore"):
        load_keystore(path, PASSWORD)


def test_edited_address_is_detected(tmp_path: Path, keystore_text: str) -> None:
    path = write(tmp_path, edited(keystore_text, address=dev_keypair("//Bob").address))
    with pytest.raises(KeystoreError, match="malformed keystore file"):
        load_keystore(path, PASSWORD)


def test_unsupported_version(tmp_path: Path, keystore_text: str) -> None:
    path = write(tmp_path, edited(keystore_text, version=2))
    with pytest.raises(KeystoreError, match="unsupported version"):
        load_keystore(path, PASSWORD)


@pytest.mark.parametrize(
    "changes",
    [
        {"version": None},
        {"version": "1"},
        {"scheme": "rsa"},
        {"scheme": None},
        {"address": 5},
        {"kdf": None},
        {"kdf": "argon2id"},
        {"kdf__name": "scrypt"},
        {"kdf__salt": "zz"},
        {"kdf__salt": "00"},
        {"kdf__opslimit": 10**9},
        {"kdf__opslimit": 0},
        {"kdf__opslimit": 2.5},
        {"kdf__memlimit": 2**50},
        {"kdf__memlimit": None},
        {"cipher": "aes"},
        {"nonce": "00" * 23},
        {"ciphertext": "00" * 10},
        {"ciphertext": None},
    ],
)
def test_malformed_fields(tmp_path: Path, keystore_text: str, changes: dict[str, object]) -> None:
    path = write(tmp_path, edited(keystore_text, **changes))
    with pytest.raises(KeystoreError, match="malformed keystore file"):
        load_keystore(path, PASSWORD)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"null", b"\xff\xfe", b"{" * 100_000, b" " * 70_000])
def test_not_a_keystore(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(content)
    with pytest.raises(KeystoreError, match="malformed keystore file"):
        load_keystore(path, PASSWORD)


def test_truncated_file(tmp_path: Path, keystore_text: str) -> None:
    path = write(tmp_path, keystore_text[: len(keystore_text) // 2])
    with pytest.raises(KeystoreError, match="malformed keystore file"):
        load_keystore(path, PASSWORD)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="not found"):
        load_keystore(tmp_path / "nope.json", PASSWORD)


# ---------------------------------------------------------------------------------------------
# Signers
# ---------------------------------------------------------------------------------------------


def test_load_signer_dev_uri_and_seed() -> None:
    assert load_signer("//Alice", None).seed == dev_keypair("//Alice").seed
    assert load_signer("//Alice", None, scheme=Scheme.SECP256K1).scheme is Scheme.SECP256K1
    seed = bytes(range(32))
    assert load_signer("0x" + seed.hex(), None).seed == seed


def test_load_signer_keystore_with_password(tmp_path: Path, keystore_text: str) -> None:
    path = write(tmp_path, keystore_text)
    assert load_signer(str(path), PASSWORD).address == dev_keypair("//Alice").address


def test_load_signer_keystore_password_from_env(
    tmp_path: Path, keystore_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, keystore_text)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD.decode())
    assert load_signer(str(path), None).address == dev_keypair("//Alice").address


def test_load_signer_keystore_password_prompt(
    tmp_path: Path, keystore_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, keystore_text)
    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return PASSWORD.decode()

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert load_signer(str(path), None).address == dev_keypair("//Alice").address
    assert prompts and str(path) in prompts[0]


def test_load_signer_no_password_available(
    tmp_path: Path, keystore_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, keystore_text)

    def no_input(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", no_input)
    with pytest.raises(KeystoreError, match="no password given"):
        load_signer(str(path), None)


@pytest.mark.parametrize("spec", ["alice", "/no/such/file.json", "0x1234"])
def test_load_signer_rejects_unknown_specs(spec: str) -> None:
    with pytest.raises((KeystoreError, ValueError)):
        load_signer(spec, PASSWORD)


def test_read_password_file_strips_one_newline(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"secret \n\n")
    assert read_password_file(path) == b"secret \n"
    path.write_bytes(b"secret\r\n")
    assert read_password_file(path) == b"secret"


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def field(output: str, name: str) -> str:
    match = re.search(rf"^{name}:\s+(\S+)$", output, re.MULTILINE)
    assert match, f"no {name!r} in output:\n{output}"
    return match.group(1)


@pytest.mark.parametrize("scheme", ["ed25519", "secp256k1"])
def test_cli_generate_then_inspect_keystore(
    tmp_path: Path, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI uses MODERATE Argon2id limits; swap in fast ones so the test stays quick.
    import node.commands.key as key_module

    monkeypatch.setattr(
        key_module,
        "save_keystore",
        lambda path, keypair, password: save_keystore(path, keypair, password, **FAST),
    )
    password_file = tmp_path / "pw"
    password_file.write_text("hunter2\n")
    out = tmp_path / "key.json"
    runner = CliRunner()
    generated = runner.invoke(
        key_group, ["generate", "--scheme", scheme, "--out", str(out), "--password-file", str(password_file)]
    )
    assert generated.exit_code == 0, generated.output
    assert "Secret seed" not in generated.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert load_keystore(out, b"hunter2").scheme.label == scheme

    inspected = runner.invoke(key_group, ["inspect", str(out), "--password-file", str(password_file)])
    assert inspected.exit_code == 0, inspected.output
    for name in ("Scheme", "Public key", "Account id", "Address"):
        assert field(inspected.output, name) == field(generated.output, name)
    assert field(inspected.output, "Scheme") == scheme


def test_cli_generate_with_default_limits_and_env_password(tmp_path: Path) -> None:
    out = tmp_path / "key.json"
    result = CliRunner().invoke(key_group, ["generate", "--out", str(out)], env={PASSWORD_ENV: "pw"})
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["kdf"]["memlimit"] == argon2id.MEMLIMIT_MODERATE
    inspected = CliRunner().invoke(key_group, ["inspect", str(out)], env={PASSWORD_ENV: "pw"})
    assert field(inspected.output, "Address") == field(result.output, "Address")


def test_cli_generate_prompts_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import node.commands.key as key_module

    monkeypatch.setattr(
        key_module,
        "save_keystore",
        lambda path, keypair, password: save_keystore(path, keypair, password, **FAST),
    )
    out = tmp_path / "key.json"
    result = CliRunner().invoke(key_group, ["generate", "--out", str(out)], input="pw1\npw1\n")
    assert result.exit_code == 0, result.output
    assert load_keystore(out, b"pw1")
    mismatch = CliRunner().invoke(key_group, ["generate", "--out", str(tmp_path / "b.json")], input="a\nb\n")
    assert mismatch.exit_code != 0


def test_cli_generate_without_out_prints_seed_with_warning() -> None:
    result = CliRunner().invoke(key_group, ["generate", "--scheme", "secp256k1"])
    assert result.exit_code == 0, result.output
    seed = bytes.fromhex(field(result.stdout, "Secret seed")[2:])
    keypair = Keypair.from_seed(Scheme.SECP256K1, seed)
    assert field(result.stdout, "Address") == keypair.address
    assert field(result.stdout, "Public key") == "0x" + keypair.public.data.hex()
    assert "WARNING" in result.stderr


def test_cli_generate_refuses_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "key.json"
    out.write_text("precious")
    result = CliRunner().invoke(key_group, ["generate", "--out", str(out)], env={PASSWORD_ENV: "pw"})
    assert result.exit_code != 0
    assert "already exists" in result.output
    assert out.read_text() == "precious"


@pytest.mark.parametrize("scheme", list(Scheme))
def test_cli_inspect_dev_uri(scheme: Scheme) -> None:
    alice = dev_keypair("//Alice", scheme)
    result = CliRunner().invoke(key_group, ["inspect", "//Alice", "--scheme", scheme.label])
    assert result.exit_code == 0, result.output
    assert field(result.output, "Scheme") == scheme.label
    assert field(result.output, "Public key") == "0x" + alice.public.data.hex()
    assert field(result.output, "Account id") == "0x" + alice.account_id.hex()
    assert field(result.output, "Address") == alice.address
    assert alice.seed.hex() not in result.output


def test_cli_inspect_seed() -> None:
    seed = bytes(range(32))
    result = CliRunner().invoke(key_group, ["inspect", "0x" + seed.hex()])
    assert result.exit_code == 0, result.output
    assert field(result.output, "Address") == Keypair.from_seed(Scheme.ED25519, seed).address


def test_cli_inspect_wrong_password_is_a_clean_error(tmp_path: Path, keystore_text: str) -> None:
    path = write(tmp_path, keystore_text)
    result = CliRunner().invoke(key_group, ["inspect", str(path)], env={PASSWORD_ENV: "nope"})
    assert result.exit_code == 1
    assert "wrong password or corrupted keystore" in result.output
    assert "Traceback" not in result.output


def test_cli_inspect_scheme_conflict(tmp_path: Path, keystore_text: str) -> None:
    path = write(tmp_path, keystore_text)
    result = CliRunner().invoke(
        key_group, ["inspect", str(path), "--scheme", "secp256k1"], env={PASSWORD_ENV: PASSWORD.decode()}
    )
    assert result.exit_code == 1
    assert "holds a key of scheme ed25519" in result.output


def test_cli_inspect_garbage() -> None:
    result = CliRunner().invoke(key_group, ["inspect", "not-a-key"])
    assert result.exit_code == 1
    assert "not a dev key URI" in result.output
