"""RPC results read back into the node's own types, so callers never handle the JSON.

The readers here mirror the node's renderers (`node.rpc.render`): a registration, offer, licence
or emission status comes back as the runtime's dataclass, equal to what the runtime holds.
A malformed answer is an `RpcClientError` (`decoded`), never wrong data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from node.client.transport import RpcClientError
from node.keys import decode_address
from node.rpc.encoding import from_hex
from node.runtime import licensing
from node.runtime.copyright import BlobRef, Registration, Version
from node.runtime.emission import EmissionStatus
from node.runtime.licensing import Licence, Offer

__all__ = [
    "AccountInfo",
    "DryRun",
    "ReadProof",
    "VestingInfo",
    "TxStatus",
    "VerifyMatch",
    "VerifyResult",
    "account_from_json",
    "amount",
    "decoded",
    "dry_run_from_json",
    "emission_from_json",
    "licence_from_json",
    "offer_from_json",
    "registration_from_json",
    "version_from_json",
]

T = TypeVar("T")


def decoded(decode: Callable[[Any], T], value: Any) -> T:
    """Apply a decoder to a result, turning a malformed answer into a client error."""
    try:
        return decode(value)
    except (ValueError, TypeError, KeyError) as exc:
        raise RpcClientError(f"malformed answer from the node: {exc}") from exc


def amount(obj: Any, name: str) -> int:
    """An amount in base units from its "...Raw" field, a decimal string (never a JSON number: above
    2**53 those are rounded by JavaScript readers, so the node never sends one)."""
    value = obj[name + "Raw"]
    if not isinstance(value, str) or not value.isdigit():
        raise ValueError(f"{name}Raw: expected base units as a decimal string, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TxStatus:
    """One `author_extrinsicUpdate`: a kind ("ready", "inBlock", ...) and the hash that comes with
    some kinds (the block for inBlock/finalized/retracted, the replacement for usurped)."""

    kind: str
    hash: bytes | None = None

    FINAL = frozenset({"finalized", "dropped", "invalid", "usurped", "finalityTimeout"})
    FAILED = frozenset({"dropped", "invalid", "usurped"})

    @property
    def is_final(self) -> bool:
        return self.kind in self.FINAL

    @classmethod
    def from_json(cls, value: Any) -> TxStatus:
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, dict) and len(value) == 1:
            ((kind, block_hash),) = value.items()
            return cls(
                kind, from_hex(block_hash, length=32, what=kind) if isinstance(block_hash, str) else None
            )
        raise RpcClientError(f"unexpected transaction status {value!r}")


@dataclass(frozen=True)
class ReadProof:
    at: bytes
    proof: list[bytes]

    @classmethod
    def from_json(cls, obj: Any) -> ReadProof:
        return cls(from_hex(obj["at"], length=32), [from_hex(node) for node in obj["proof"]])


@dataclass(frozen=True)
class VerifyMatch:
    kind: str  # "exact" (the watermark names it) or "similar" (pHash within the chain's radius)
    distance: int  # pHash distance to `version`
    version: int  # the version the copy matched (exact) or is nearest to (similar)
    registration: Registration
    offers: list[Offer]

    @property
    def owner(self) -> bytes:
        return self.registration.owner


@dataclass(frozen=True)
class VerifyResult:
    width: int
    height: int
    phash: int
    watermark: bytes | None  # the payload the validators' path reads
    matches: list[VerifyMatch]
    watermarks: list[bytes]  # every payload found: more than one if the copy was marked again
    phash_energy: int = 0  # structure the pHash sees; below `min_phash_energy` it matches nothing
    min_phash_energy: int = 0
    radius: int = 0  # the chain's pHash radius for a `similar` match
    nearest: tuple[int, int] | None = None  # (registration id, distance) within 16 bits, any radius

    @property
    def flat(self) -> bool:
        """The copy has no structure at the pHash's scale: only its watermark can match."""
        return self.phash_energy < self.min_phash_energy

    @property
    def best(self) -> VerifyMatch | None:
        """The earliest exact match if there is one, else the nearest similar one."""
        return self.matches[0] if self.matches else None

    @classmethod
    def from_json(cls, obj: Any) -> VerifyResult:
        watermark = obj["watermark"]
        return cls(
            int(obj["width"]),
            int(obj["height"]),
            int(obj["phash"], 16),
            None if watermark is None else from_hex(watermark, length=8, what="watermark"),
            [
                VerifyMatch(
                    str(m["kind"]),
                    int(m["distance"]),
                    int(m["version"]),
                    registration_from_json(m["registration"]),
                    [offer_from_json(o) for o in m["offers"]],
                )  # fmt: skip
                for m in obj["matches"]
            ],
            [from_hex(w, length=8, what="watermark") for w in obj["watermarks"]],
            int(obj["phashEnergy"]),
            int(obj["minPhashEnergy"]),
            int(obj["radius"]),
            None if obj["nearest"] is None else (int(obj["nearest"]["id"]), int(obj["nearest"]["distance"])),
        )


def version_from_json(obj: Any) -> Version:
    return Version(
        from_hex(obj["sha256"], length=32, what="sha256"), int(obj["phash"], 16), int(obj["width"]),
        int(obj["height"]), int(obj["formatCode"]), bool(obj["isRaw"]), decode_address(obj["uploader"]),
        int(obj["block"]), int(obj["timestamp"]), int(obj["extrinsicIndex"]),
        from_hex(obj["watermark"], length=8, what="watermark"),
        tuple(
            BlobRef(int(b["kind"]), from_hex(b["root"], length=32, what="blob root"), int(b["size"])) for b in obj["blobs"]
        ),
    )  # fmt: skip


def registration_from_json(obj: Any) -> Registration:
    return Registration(
        int(obj["id"]), decode_address(obj["owner"]), str(obj["title"]), str(obj["creator"]),
        str(obj["description"]), tuple(version_from_json(v) for v in obj["versions"]),
    )  # fmt: skip


_KINDS = {name: kind for kind, name in licensing.KIND_NAMES.items()}


def offer_from_json(obj: Any) -> Offer:
    return Offer(
        int(obj["id"]), int(obj["registrationId"]), decode_address(obj["seller"]), _KINDS[obj["kind"]],
        amount(obj, "price"), int(obj["maxResolution"]), str(obj["use"]), str(obj["territory"]),
        int(obj["runSize"]), int(obj["durationMs"]), bool(obj["exclusive"]), int(obj["createdBlock"]),
    )  # fmt: skip


def licence_from_json(obj: Any) -> Licence:
    return Licence(
        int(obj["id"]), int(obj["offerId"]), int(obj["registrationId"]), decode_address(obj["licensee"]),
        decode_address(obj["licensor"]), _KINDS[obj["kind"]], amount(obj, "price"), amount(obj, "fee"),
        int(obj["maxResolution"]), str(obj["use"]), str(obj["territory"]), int(obj["runSize"]),
        bool(obj["exclusive"]), int(obj["grantedAt"]), int(obj["expiresAt"]), int(obj["block"]),
    )  # fmt: skip


def emission_from_json(obj: Any) -> EmissionStatus:
    return EmissionStatus(
        amount(obj, "generated"), int(obj["rateNumerator"]), int(obj["rateDenominator"]),
        amount(obj, "remaining"), amount(obj, "nextReward"),
    )  # fmt: skip


@dataclass(frozen=True)
class VestingInfo:
    """A vesting schedule at the block's timestamp (`balances_account`)."""

    locked: int  # still held back by the schedule
    vestable: int  # unlocked by time, frozen until a `vesting.vest` call
    next_unlock_ms: int | None
    fully_unlocked_ms: int
    schedule: tuple[tuple[int, int, bool], ...]  # (unlock at ms, amount, unlocked)


@dataclass(frozen=True)
class AccountInfo:
    """An account as `balances_account` shows it: what it holds and what of it can move."""

    address: str
    nonce: int
    free: int
    reserved: int
    frozen: int
    transferable: int
    existential_deposit: int
    vesting: VestingInfo | None

    @property
    def exists(self) -> bool:
        return self.free + self.reserved > 0


def account_from_json(obj: Any) -> AccountInfo:
    v = obj["vesting"]
    vesting = None if v is None else VestingInfo(
        amount(v, "locked"), amount(v, "vestable"), None if v["nextUnlockAt"] is None else int(v["nextUnlockAt"]),
        int(v["fullyUnlockedAt"]),
        tuple((int(t["unlockAt"]), amount(t, "amount"), bool(t["unlocked"])) for t in v["schedule"]),
    )  # fmt: skip
    return AccountInfo(
        str(obj["address"]), int(obj["nonce"]), amount(obj, "free"), amount(obj, "reserved"), amount(obj, "frozen"),
        amount(obj, "transferable"), amount(obj, "existentialDeposit"), vesting,
    )  # fmt: skip


@dataclass(frozen=True)
class DryRun:
    """What `system_dryRun` says a signed extrinsic would do on top of a block."""

    valid: bool
    invalid_reason: str | None  # the pool's reason when not valid ("InsufficientFunds", ...)
    invalid_detail: str
    applied: bool  # False when earlier transactions of the sender wait in the pool
    success: bool | None
    error: str | None  # "module.Error" of a failing call
    error_detail: dict[str, Any]
    error_docs: str
    fee: int  # with the tip
    events: tuple[dict[str, Any], ...]

    @property
    def fails(self) -> bool:
        """Included, it would fail and still pay its fee."""
        return self.applied and self.success is False


def dry_run_from_json(obj: Any) -> DryRun:
    invalid = obj["invalid"]
    error = obj["error"]
    return DryRun(
        bool(obj["valid"]),
        None if invalid is None else str(invalid["reason"]),
        "" if invalid is None else str(invalid["detail"]),
        bool(obj["applied"]),
        None if obj["success"] is None else bool(obj["success"]),
        None if error is None else str(error["name"]),
        {} if error is None or not isinstance(error["detail"], dict) else dict(error["detail"]),
        "" if error is None else str(error["docs"]),
        amount(obj, "fee") if obj["valid"] else 0,
        tuple(obj.get("events") or ()),
    )
