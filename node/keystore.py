"""Password-encrypted key files, and turning a user's "--key" argument into a signing keypair.

A keystore file is small JSON so that a person can see what it holds without the password:

    {"version": 1, "scheme": "ed25519", "address": "5...",
     "kdf": {"name": "argon2id", "salt": "<hex>", "opslimit": 3, "memlimit": 268435456},
     "cipher": "xsalsa20poly1305", "nonce": "<hex>", "ciphertext": "<hex>"}

The 32-byte seed is sealed with libsodium's SecretBox (XSalsa20-Poly1305) under a key stretched from
the password with Argon2id. Poly1305 authenticates the ciphertext, so a wrong password and a flipped
bit look the same ("wrong password or corrupted keystore"). The plain-text `scheme` and `address` are
not covered by the MAC; instead, after decrypting, the address is recomputed from the seed and must
match, which catches an edited header.

Every failure to load ends in `KeystoreError` with a message fit to show a person, never a raw
traceback from json, binascii or libsodium.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.utils

from node.fsutil import fsync_dir, replace_durably
from node.keys import DEV_NAMES, Keypair, Scheme, dev_keypair, parse_key_uri

__all__ = [
    "DEV_CHAIN_TYPES",
    "KEYSTORE_VERSION",
    "PASSWORD_ENV",
    "DevKeyRefused",
    "KeystoreError",
    "check_dev_key",
    "is_dev_uri",
    "load_keystore",
    "load_signer",
    "read_password_file",
    "save_keystore",
    "well_known_dev_key",
]

KEYSTORE_VERSION = 1
PASSWORD_ENV = "IMAGECHAIN_PASSWORD"

_KDF_NAME = "argon2id"
_CIPHER_NAME = "xsalsa20poly1305"
_MAX_FILE_BYTES = 64 * 1024

# The KDF cost is read from the file, so bound it: a hostile keystore must not be able to make us
# allocate terabytes or spin for hours. SENSITIVE (1 GiB, 4 passes) is libsodium's largest preset.
_MIN_OPSLIMIT, _MAX_OPSLIMIT = argon2id.OPSLIMIT_MIN, argon2id.OPSLIMIT_SENSITIVE
_MIN_MEMLIMIT, _MAX_MEMLIMIT = argon2id.MEMLIMIT_MIN, argon2id.MEMLIMIT_SENSITIVE

WRONG_PASSWORD = "wrong password or corrupted keystore"
UNSUPPORTED_VERSION = "unsupported version"
MALFORMED = "malformed keystore file"


class KeystoreError(Exception):
    """A keystore could not be written or read; the message is meant for the user."""


class DevKeyRefused(KeystoreError):
    """A public development key offered for signing on a chain where it is not safe."""


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def save_keystore(
    path: str | os.PathLike[str],
    keypair: Keypair,
    password: bytes,
    *,
    opslimit: int = argon2id.OPSLIMIT_MODERATE,
    memlimit: int = argon2id.MEMLIMIT_MODERATE,
    overwrite: bool = False,
) -> None:
    """Encrypt `keypair` under `password` into a new file readable only by its owner (mode 0600).

    MODERATE Argon2id limits (~1 s, 256 MiB) are the default because a keystore is decrypted rarely
    and its file may leak; pass INTERACTIVE limits where speed matters more (tests, throwaway
    devnets). An existing file is left alone unless `overwrite` is set, because clobbering a
    keystore can destroy the only copy of a key.
    """
    if not isinstance(password, bytes) or not password:
        raise KeystoreError("the keystore password must be non-empty bytes")
    if not (_MIN_OPSLIMIT <= opslimit <= _MAX_OPSLIMIT and _MIN_MEMLIMIT <= memlimit <= _MAX_MEMLIMIT):
        raise KeystoreError("argon2id limits out of range")
    if not overwrite and os.path.lexists(path):
        # Checked again atomically (O_EXCL) when writing; this just avoids a pointless KDF run.
        raise KeystoreError(f"{path} already exists; refusing to overwrite a keystore")
    salt = nacl.utils.random(argon2id.SALTBYTES)
    key = argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, password, salt, opslimit=opslimit, memlimit=memlimit)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    ciphertext = nacl.secret.SecretBox(key).encrypt(keypair.seed, nonce).ciphertext
    document = {
        "version": KEYSTORE_VERSION,
        "scheme": keypair.scheme.label,
        "address": keypair.address,
        "kdf": {"name": _KDF_NAME, "salt": salt.hex(), "opslimit": opslimit, "memlimit": memlimit},
        "cipher": _CIPHER_NAME,
        "nonce": nonce.hex(),
        "ciphertext": ciphertext.hex(),
    }
    _write_private(Path(path), (json.dumps(document, indent=2) + "\n").encode(), overwrite)


def _write_private(path: Path, content: bytes, overwrite: bool) -> None:
    """Write `content` with mode 0600 from the first byte (never briefly world-readable)."""
    target = path
    if overwrite:
        # Write beside the target and rename over it, so a crash leaves the old file or the new one.
        target = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError as exc:
        raise KeystoreError(f"{path} already exists; refusing to overwrite a keystore") from exc
    except OSError as exc:
        raise KeystoreError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            replace_durably(target, path)
        else:
            fsync_dir(path.parent)  # the new directory entry, not just the data
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise KeystoreError(f"cannot write {path}: {exc.strerror}") from exc


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def load_keystore(path: str | os.PathLike[str], password: bytes) -> Keypair:
    """Decrypt a keystore file. Raises `KeystoreError` for every kind of failure."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise KeystoreError(f"keystore file not found: {path}") from exc
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from exc
    if len(raw) > _MAX_FILE_BYTES:
        raise KeystoreError(f"{MALFORMED}: {path} is too large to be a keystore")
    return decrypt_keystore(raw, password, source=str(path))


def decrypt_keystore(raw: bytes, password: bytes, *, source: str = "keystore") -> Keypair:
    """Decrypt keystore JSON already in memory (what `load_keystore` does after reading the file)."""
    if not isinstance(password, bytes):
        raise KeystoreError("the keystore password must be bytes")
    fields = _parse_document(raw, source)
    try:
        key = argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            password,
            fields["salt"],
            opslimit=fields["opslimit"],
            memlimit=fields["memlimit"],
        )
        seed = nacl.secret.SecretBox(key).decrypt(fields["ciphertext"], fields["nonce"])
    except nacl.exceptions.CryptoError as exc:
        raise KeystoreError(f"{WRONG_PASSWORD} ({source})") from exc
    try:
        keypair = Keypair.from_seed(fields["scheme"], seed)
    except ValueError as exc:
        raise KeystoreError(f"{MALFORMED}: {source} holds an invalid {fields['scheme'].label} key") from exc
    if keypair.address != fields["address"]:
        raise KeystoreError(f"{MALFORMED}: {source} says address {fields['address']}, but its key is another")
    return keypair


def _parse_document(raw: bytes, source: str) -> dict[str, Any]:
    """Check the JSON shape strictly and return decoded fields; any deviation is `KeystoreError`."""

    def malformed(detail: str) -> KeystoreError:
        return KeystoreError(f"{MALFORMED}: {source}: {detail}")

    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise malformed("not JSON") from exc
    if not isinstance(document, dict):
        raise malformed("not a JSON object")
    version = document.get("version")
    if type(version) is not int:
        raise malformed("missing or non-integer version")
    if version != KEYSTORE_VERSION:
        raise KeystoreError(f"{UNSUPPORTED_VERSION} {version} in {source} (this node reads version 1)")

    def text(container: dict[str, Any], name: str) -> str:
        value = container.get(name)
        if not isinstance(value, str):
            raise malformed(f"missing or non-string {name!r}")
        return value

    def hex_bytes(container: dict[str, Any], name: str, length: int | None = None) -> bytes:
        try:
            value = bytes.fromhex(text(container, name))
        except ValueError as exc:
            raise malformed(f"{name!r} is not hex") from exc
        if length is not None and len(value) != length:
            raise malformed(f"{name!r} must be {length} bytes")
        return value

    def bounded_int(container: dict[str, Any], name: str, low: int, high: int) -> int:
        value = container.get(name)
        if type(value) is not int or not low <= value <= high:
            raise malformed(f"{name!r} must be an integer in [{low}, {high}]")
        return value

    try:
        scheme = Scheme.from_label(text(document, "scheme"))
    except ValueError as exc:
        raise malformed(str(exc)) from exc
    kdf = document.get("kdf")
    if not isinstance(kdf, dict):
        raise malformed("missing 'kdf' object")
    if text(kdf, "name") != _KDF_NAME:
        raise malformed(f"unsupported kdf {kdf['name']!r}")
    if text(document, "cipher") != _CIPHER_NAME:
        raise malformed(f"unsupported cipher {document['cipher']!r}")
    return {
        "scheme": scheme,
        "address": text(document, "address"),
        "salt": hex_bytes(kdf, "salt", argon2id.SALTBYTES),
        "opslimit": bounded_int(kdf, "opslimit", _MIN_OPSLIMIT, _MAX_OPSLIMIT),
        "memlimit": bounded_int(kdf, "memlimit", _MIN_MEMLIMIT, _MAX_MEMLIMIT),
        "nonce": hex_bytes(document, "nonce", nacl.secret.SecretBox.NONCE_SIZE),
        # 32-byte seed + 16-byte Poly1305 tag; other lengths cannot be a keystore of ours.
        "ciphertext": hex_bytes(document, "ciphertext", 32 + nacl.secret.SecretBox.MACBYTES),
    }


# ---------------------------------------------------------------------------------------------
# Signers from the command line
# ---------------------------------------------------------------------------------------------


def read_password_file(path: str | os.PathLike[str]) -> bytes:
    """A password stored in a file; one trailing newline (as editors and `echo` add) is not part of it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeystoreError(f"cannot read password file {path}: {exc.strerror}") from exc
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return data


def _password_from_env_or_prompt(prompt: str) -> bytes:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env.encode("utf-8")
    try:
        return getpass.getpass(prompt).encode("utf-8")
    except (EOFError, KeyboardInterrupt) as exc:
        raise KeystoreError(f"no password given (set {PASSWORD_ENV} or use a password file)") from exc


def load_signer(spec: str, password: bytes | None = None, *, scheme: Scheme = Scheme.ED25519) -> Keypair:
    """The keypair a command should sign with, from what the user typed.

    `spec` is a dev URI (``//Alice``), a raw ``0x`` seed (both in `scheme`), or a keystore path (its
    scheme comes from the file). A keystore needs a password: `password`, else the
    ``IMAGECHAIN_PASSWORD`` environment variable, else an interactive prompt. Raises
    `KeystoreError` for keystore problems and ValueError for a malformed URI or seed.
    """
    text = spec.strip()
    if text.startswith("//") or text.lower().startswith("0x"):
        return parse_key_uri(text, scheme)
    path = Path(text).expanduser()
    if not path.is_file():
        raise KeystoreError(
            f"{spec!r} is not a dev key URI (//Alice), a 0x seed, or an existing keystore file"
        )
    if password is None:
        password = _password_from_env_or_prompt(f"Password for {path}: ")
    return load_keystore(path, password)


# ---------------------------------------------------------------------------------------------
# Public development keys
# ---------------------------------------------------------------------------------------------

# Chain types (Substrate's) on which the public dev keys may sign: a single-node dev chain and a
# local testnet (`imagechain devnet` specs are "local"). Anything else ("live", custom) is a chain
# where a key anyone can recompute would let anyone author, vote or spend in its name.
DEV_CHAIN_TYPES = frozenset({"development", "local"})


def is_dev_uri(spec: str) -> bool:
    """True for a ``//Name`` dev key URI, whose secret is public (`node.keys.dev_keypair`)."""
    return spec.strip().startswith("//")


def well_known_dev_key(keypair: Keypair) -> str | None:
    """The URI of a well-known dev key (//Alice ... //Ferdie) equal to `keypair`, else None."""
    for name in DEV_NAMES:
        uri = f"//{name}"
        if dev_keypair(uri, keypair.scheme).public == keypair.public:
            return uri
    return None


def check_dev_key(spec: str, keypair: Keypair | None, chain_type: str, option: str) -> None:
    """Refuse a dev key (``//Name``, or a seed or keystore holding //Alice ... //Ferdie) unless the
    chain is a development or local one; `option` names the flag in the message.

    Dev secrets are derived from their names, so on a live chain a validator signing with one
    lets anyone author and vote as it, and an account behind one can be emptied by anyone.
    """
    kind = chain_type.strip().lower()
    if kind in DEV_CHAIN_TYPES:
        return
    uri = spec.strip() if is_dev_uri(spec) else (well_known_dev_key(keypair) if keypair else None)
    if uri is None:
        return
    shown = spec.strip() if is_dev_uri(spec) else f"{spec!r} (the public dev key {uri})"
    raise DevKeyRefused(
        f"{option} {shown} refused: dev keys are public (anyone can derive the secret of //Name from "
        f"its name), so on this {chain_type!r} chain anyone could sign as it. Dev keys work only on "
        f"chains of type 'development' or 'local' (--dev, imagechain devnet). Use a key of your own: "
        f"imagechain key generate --out FILE, then {option} FILE."
    )
