"""A small chain over a plain dict state, and properly watermarked uploads, for the copyright tests.

`Chain` runs real blocks through the executive (timestamp inherent, signed extrinsics, fees,
finalisation) with a consistent genesis hash, so the watermark key the runtime derives from
state (`system:block_hash:0`) is the one the uploads were marked with.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from node.chain_spec import ChainSpec, genesis_storage
from node.codec import encode, u128_to_bytes
from node.imaging.phash import phash_from_rendition
from node.imaging.rendition import verification_rendition
from node.imaging.watermark import embed
from node.keys import Keypair
from node.runtime import balances, copyright, emission, pod, system
from node.runtime.executive import InvalidTransaction, timestamp_inherent
from node.runtime.runtime import RUNTIME
from node.runtime.support import EventRecord
from node.types import Call, Header, aura_pre_digest
from tests.chainutil import IMG, signed
from tests.imaging.conftest import natural_image

GENESIS = b"\x11" * 32
DAY_MS = 86_400_000


# ---------------------------------------------------------------------------------------------
# Images and uploads
# ---------------------------------------------------------------------------------------------


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.LANCZOS))


@functools.lru_cache(maxsize=64)
def scene(seed: int, width: int = 512, height: int = 384) -> np.ndarray:
    """A photo-like image; the same seed at another size is the same scene resampled."""
    base = natural_image(seed, 384, 512)
    return base if (width, height) == (512, 384) else resize(base, width, height)


def flat_image(width: int = 512, height: int = 384, grey: int = 128) -> np.ndarray:
    return np.full((height, width, 3), grey, dtype=np.uint8)


@dataclass(frozen=True)
class Upload:
    """What the PoD client produces for one file: the marked image and the `register` arguments."""

    sha256: bytes
    width: int
    height: int
    format_code: int
    is_raw: bool
    phash: int
    payload: bytes
    rendition: bytes
    title: str = "title"
    creator: str = "creator"
    description: str = "description"
    blobs: tuple[copyright.BlobRef, ...] | None = None  # default: a published file named after the sha256

    def args(self, **changes: Any) -> tuple[Any, ...]:
        v = {
            "sha256": self.sha256, "width": self.width, "height": self.height, "format_code": self.format_code,
            "is_raw": self.is_raw, "phash": self.phash, "payload": self.payload, "blobs": [b.to_wire() for b in self.published_blobs],
            "rendition": self.rendition, "title": self.title, "creator": self.creator,
            "description": self.description,
        }  # fmt: skip
        v.update(changes)
        return tuple(v.values())

    @property
    def published_blobs(self) -> tuple[copyright.BlobRef, ...]:
        """The blobs the claim names: the runtime checks their form (the store, their bytes)."""
        if self.blobs is not None:
            return self.blobs
        return (copyright.BlobRef(copyright.BLOB_PUBLISHED, hashlib.blake2b(self.sha256, digest_size=32).digest(), 150_000),)

    def call(self, **changes: Any) -> Call:
        return Call("copyright", "register", self.args(**changes))


def file_hash(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


@functools.lru_cache(maxsize=512)
def _marked(key_seed: tuple, genesis: bytes, sha: bytes, uploader: bytes) -> tuple[bytes, int, bytes]:
    kind, *rest = key_seed
    if kind == "scene":
        rgb = scene(*rest)
    elif kind == "blurred":
        from PIL import ImageFilter

        rgb = np.asarray(Image.fromarray(scene(*rest)).filter(ImageFilter.GaussianBlur(8)))
    else:
        rgb = flat_image(*rest)
    key = copyright.watermark_key_for(genesis)
    payload = copyright.watermark_payload_for(genesis, sha, uploader)
    rendition = verification_rendition(embed(rgb, key, payload))
    return rendition.tobytes(), phash_from_rendition(rendition), payload


def make_upload(
    uploader: bytes,
    seed: int,
    width: int = 512,
    height: int = 384,
    *,
    tag: str | None = None,
    format_code: int = 1,
    is_raw: bool = False,
    flat: bool = False,
    blurred: bool = False,
    genesis: bytes = GENESIS,
    claimed: tuple[int, int] | None = None,
) -> Upload:
    """A watermarked upload of scene `seed` at `width` x `height` (the file's hash from `tag`)."""
    sha = file_hash(tag or f"scene {seed} {width}x{height} raw={is_raw} flat={flat}" + (" blurred" if blurred else ""))
    key_seed = ("flat", width, height) if flat else ("blurred" if blurred else "scene", seed, width, height)
    rendition, phash, payload = _marked(key_seed, genesis, sha, uploader)
    w, h = claimed or (width, height)
    return Upload(sha, w, h, format_code, is_raw, phash, payload, rendition)


# ---------------------------------------------------------------------------------------------
# A chain over a dict
# ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    ok: bool
    events: list[EventRecord]
    fee: int

    def names(self) -> list[tuple[str, str]]:
        return [(e.module, e.name) for e in self.events]

    def event(self, module: str, name: str) -> EventRecord:
        found = [e for e in self.events if (e.module, e.name) == (module, name)]
        assert found, f"no {module}.{name} in {self.names()}"
        return found[0]

    @property
    def failure(self) -> tuple[Any, ...] | None:
        failed = [e for e in self.events if e.name == "ExtrinsicFailed"]
        return failed[0].fields if failed else None


@dataclass
class Chain:
    state: dict[bytes, bytes]
    number: int = 0
    slot: int = 0
    nonces: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    def new(cls, spec: ChainSpec, **pod_overrides: int) -> Chain:
        state = dict(genesis_storage(spec))
        if pod_overrides:
            params = pod.PodParams(**{**pod.read_params(state.get).__dict__, **pod_overrides})
            state[pod.KEY_PARAMS] = encode(params.to_wire())
        chain = cls(state, slot=spec.genesis_time_ms // spec.params.slot_ms + 1)
        chain.block()  # block 1 records the genesis hash in state
        return chain

    @property
    def get(self) -> Any:
        return self.state.get

    @property
    def now_ms(self) -> int:
        return self.slot * system.read_params(self.get).slot_ms

    def advance(self, ms: int) -> None:
        """Let time pass: the next block's slot starts at least `ms` later."""
        self.slot += -(-ms // system.read_params(self.get).slot_ms)

    def sign(self, who: Keypair, call: Call) -> bytes:
        nonce = self.nonces.get(who.account_id, system.read_account(self.get, who.account_id).nonce)
        self.nonces[who.account_id] = nonce + 1
        return signed(who, call, GENESIS, nonce)

    def block(self, *extrinsics: bytes) -> list[Result]:
        """Apply one block; each extrinsic must be valid (InvalidTransaction propagates)."""
        self.number += 1
        self.slot += 1
        parent = GENESIS if self.number == 1 else self.number.to_bytes(32, "big")
        header = Header(parent, self.number, b"\x00" * 32, b"\x00" * 32, (aura_pre_digest(self.slot),))
        ctx = RUNTIME.initialize_block(self.get, header)
        RUNTIME.apply_extrinsic(ctx, GENESIS, timestamp_inherent(self.slot * ctx.params.slot_ms))
        results = []
        try:
            for ext in extrinsics:
                before, fees_before = len(ctx.events), ctx.fees_collected
                ok = RUNTIME.apply_extrinsic(ctx, GENESIS, ext)
                results.append(Result(ok, ctx.events[before:], ctx.fees_collected - fees_before))
        except InvalidTransaction:
            self.number -= 1
            self.nonces.clear()
            raise
        for key, value in RUNTIME.finalize_block(ctx).items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value
        self.nonces.clear()
        return results

    def run(self, who: Keypair, call: Call) -> Result:
        """One signed call in its own block; the result says whether the call succeeded."""
        (result,) = self.block(self.sign(who, call))
        return result

    def validate(self, who: Keypair, call: Call) -> None:
        best_hash = GENESIS if self.number == 0 else (self.number + 1).to_bytes(32, "big")  # as `block` names parents
        RUNTIME.validate_transaction(
            self.get, GENESIS, signed(who, call, GENESIS, self._nonce(who)), self.number, best_hash
        )

    def _nonce(self, who: Keypair) -> int:
        return system.read_account(self.get, who.account_id).nonce

    # -- reads ------------------------------------------------------------------------------------

    def free(self, who: Keypair | bytes) -> int:
        account_id = who if isinstance(who, bytes) else who.account_id
        return system.read_account(self.get, account_id).free

    def issuance(self) -> int:
        return int.from_bytes(self.state[balances.KEY_TOTAL_ISSUANCE], "big")

    def total_balances(self) -> int:
        return sum(
            system.Account.decode(v).total for k, v in self.state.items() if k.startswith(b"system:account:")
        )

    def generated(self) -> int:
        return emission.generated(self.get)

    def registration(self, registration_id: int) -> copyright.Registration:
        registration = copyright.get_registration(self.get, registration_id)
        assert registration is not None
        return registration


def register_call(upload: Upload, **changes: Any) -> Call:
    return upload.call(**changes)


def u128(value: int) -> bytes:
    return u128_to_bytes(value)


__all__ = ["IMG", "GENESIS", "DAY_MS", "Chain", "Upload", "make_upload", "scene", "flat_image", "u128"]
