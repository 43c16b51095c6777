"""The wallet's side of the image store: uploads and downloads over a node's gateway, and the
sealed original.

* `upload_blob(url, data, progress)`: `PUT /blob`, streamed in 256 KiB pieces with a progress
  callback; the node's answer (root, size) is checked against the root computed here.
* `fetch_blob(url, root)` and `fetch_published(url, registration_id, version)`: downloads that
  trust no node: the bytes must hash to the root (for a registration, the root its version
  records on chain, read with `copyright_getRegistration` from the same node... and checked here).
* `seal_original(data, owner)` / `open_original(sealed, keypair)`: the original file of a
  registration is stored sealed to its owner with libsodium's sealed box (pynacl `SealedBox`:
  an ephemeral X25519 key, XSalsa20-Poly1305), the owner's ed25519 key converted to X25519
  (`crypto_sign_ed25519_pk_to_curve25519`). Anyone can seal; only the owner's secret key opens.

**secp256k1 accounts cannot receive a sealed original.** Their account id is a hash of the key,
not a key, and a secp256k1 key has no standard conversion to X25519. Sealing to one raises
`SealedOriginalError`: use an ed25519 account (the default of `imagechain key generate`) as the
owner of images whose originals are kept sealed. Pass the owner's `PublicKey` when you have it:
from a bare 32-byte account id the scheme cannot be seen (it is refused when it is not a valid
ed25519 point, which catches most secp256k1 account ids but not all: about 1 in 16 hashes is one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from node.keys import Keypair, PublicKey, Scheme
from node.primitives.merkle import SEGMENT_BYTES, blob_root

__all__ = [
    "BlobClientError",
    "BlobNotFound",
    "SealedOriginalError",
    "UploadedBlob",
    "fetch_blob",
    "fetch_published",
    "open_original",
    "seal_original",
    "upload_blob",
]

SEAL_OVERHEAD = nacl.bindings.crypto_box_SEALBYTES  # 48 bytes: the ephemeral key and the MAC

# `progress(done_bytes, total_bytes)`, called as the upload is sent.
Progress = Callable[[int, int], None]


class BlobClientError(Exception):
    """The node refused or failed a blob request, or answered with bytes that do not check out."""


class BlobNotFound(BlobClientError):
    """The node has no such blob or registration (HTTP 404)."""


class SealedOriginalError(Exception):
    """A sealed original that cannot be made (secp256k1 owner) or opened (another key)."""


@dataclass(frozen=True)
class UploadedBlob:
    root: bytes
    size: int
    created: bool  # False: the node held it already


def _error(response: httpx.Response, what: str) -> BlobClientError:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200] or response.reason_phrase
    kind = BlobNotFound if response.status_code == 404 else BlobClientError
    return kind(f"{what}: HTTP {response.status_code}: {message}")


def upload_blob(url: str, data: bytes, progress: Progress | None = None, timeout: float = 120.0) -> UploadedBlob:
    """Store `data` in the node's image store (`PUT /blob`) and check the root it answers."""
    root = blob_root(data)
    total = len(data)

    def pieces() -> Iterator[bytes]:
        if progress is not None:
            progress(0, total)
        for start in range(0, total, SEGMENT_BYTES):
            yield data[start : start + SEGMENT_BYTES]
            if progress is not None:
                progress(min(total, start + SEGMENT_BYTES), total)

    try:
        response = httpx.put(
            f"{url.rstrip('/')}/blob",
            content=pieces(),
            headers={"Content-Length": str(total), "Content-Type": "application/octet-stream"},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise BlobClientError(f"upload to {url} failed: {exc}") from exc
    if response.status_code not in (200, 201):
        raise _error(response, "upload refused")
    answer = response.json()
    if answer.get("root") != f"0x{root.hex()}" or answer.get("size") != total:
        raise BlobClientError(f"the node answered {answer}, not root 0x{root.hex()} of {total} bytes")
    return UploadedBlob(root, total, response.status_code == 201)


def fetch_blob(url: str, root: bytes, timeout: float = 120.0) -> bytes:
    """A blob's bytes from the node's gateway (`GET /blob/<root>`), checked against `root`."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/blob/0x{root.hex()}", timeout=timeout)
    except httpx.HTTPError as exc:
        raise BlobClientError(f"fetching blob 0x{root.hex()} from {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise _error(response, f"blob 0x{root.hex()}")
    data = response.content
    if blob_root(data) != root:
        raise BlobClientError(f"{url} answered bytes that are not blob 0x{root.hex()}")
    return data


def fetch_published(url: str, registration_id: int, version: int = 0, timeout: float = 120.0) -> bytes:
    """The published file of a registration's version (`GET /img/<id>?v=N`), byte for byte,
    checked against the blob root that version records on chain."""
    from node.client import RpcClient

    with RpcClient(url, timeout=timeout) as client:
        registration = client.get_registration(registration_id)
    if registration is None:
        raise BlobNotFound(f"no registration {registration_id}")
    if not 0 <= version < len(registration.versions):
        raise BlobNotFound(f"registration {registration_id} has {len(registration.versions)} version(s)")
    published = [b for b in registration.versions[version].blobs if b.kind == 0]
    if not published:
        raise BlobNotFound(f"version {version} of registration {registration_id} stores no published file")
    try:
        response = httpx.get(f"{url.rstrip('/')}/img/{registration_id}", params={"v": version}, timeout=timeout)
    except httpx.HTTPError as exc:
        raise BlobClientError(f"fetching registration {registration_id} from {url} failed: {exc}") from exc
    if response.status_code != 200:
        raise _error(response, f"registration {registration_id} version {version}")
    data = response.content
    if blob_root(data) != published[0].root:
        raise BlobClientError(f"{url} answered a file that is not the one registration {registration_id} records")
    return data


# ---------------------------------------------------------------------------------------------
# The sealed original
# ---------------------------------------------------------------------------------------------


def _curve_public(owner: PublicKey | bytes) -> nacl.public.PublicKey:
    if isinstance(owner, PublicKey):
        if owner.scheme is not Scheme.ED25519:
            raise SealedOriginalError(
                "the owner is a secp256k1 account: a sealed original needs an ed25519 account "
                "(its key converts to X25519; a secp256k1 key does not)"
            )
        key = owner.data
    else:
        key = bytes(owner)
        if len(key) != 32:
            raise SealedOriginalError(f"an owner account id is 32 bytes, not {len(key)}")
    try:
        return nacl.public.PublicKey(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(key))
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError, nacl.exceptions.TypeError) as exc:
        raise SealedOriginalError(
            "the owner account id is not an ed25519 public key (a secp256k1 account?): a sealed "
            "original needs an ed25519 account"
        ) from exc


def seal_original(data: bytes, owner: PublicKey | bytes) -> bytes:
    """`data` sealed to the owner: an ed25519 account (its `PublicKey`, or its 32-byte account
    id, which for ed25519 is the public key). 48 bytes longer than `data`."""
    return nacl.public.SealedBox(_curve_public(owner)).encrypt(bytes(data))


def open_original(sealed: bytes, keypair: Keypair) -> bytes:
    """The original, opened with the owner's key; SealedOriginalError for any other key."""
    if keypair.scheme is not Scheme.ED25519:
        raise SealedOriginalError("sealed originals are opened with an ed25519 key; this one is secp256k1")
    secret = nacl.signing.SigningKey(keypair.seed).to_curve25519_private_key()
    try:
        return nacl.public.SealedBox(secret).decrypt(bytes(sealed))
    except nacl.exceptions.CryptoError:
        raise SealedOriginalError(
            f"this key ({keypair.address}) cannot open the sealed original: it is sealed to another account"
        ) from None
