"""An image registration through a node: the pipeline's steps, with the chain's answers in between.

`register_image(client, signer, path, ...)` asks the node for the genesis hash (the watermark
key and payload depend on it), runs `pipeline.prepare_file` with a preflight that stops at once
when the chain already has this exact file, then signs and submits `copyright.register` through
`node.client.transactions` and reads what the chain made of it from the events. The pipeline
itself never talks to a node; the client knows nothing of images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.client.rpc import RpcClient
from node.client.transactions import DEFAULT_INCLUSION_TIMEOUT_S, CallFailed, CallOutcome, submit_call
from node.client.transport import RpcClientError
from node.keys import Keypair, encode_address
from node.pod_mining.pipeline import PodError, PreparedUpload, Progress, prepare_file, register_call
from node.runtime import copyright, pod

__all__ = ["RegistrationOutcome", "RegistrationRejected", "register_image", "submit_registration"]

_REJECTIONS = {
    "copyright.DuplicateSha256": "this exact file is already registered as registration #{0}",
    "copyright.NearDuplicate": (
        "the image is a near-duplicate of registration #{0} (pHash distance {1}); only a version with more "
        "pixels than its largest, or the RAW original, can be added"
    ),
    "copyright.PayloadTaken": "its watermark payload is already used by registration #{0}",
    "copyright.TooManyVersions": "registration #{0} already has the maximum number of versions",
}


class RegistrationRejected(CallFailed):
    """The chain refused a registration by its ownership rules; `registration_id` is the image it
    collided with (None for errors that name none)."""

    def __init__(self, outcome: CallOutcome, error: str, detail: tuple[Any, ...] = ()) -> None:
        template = _REJECTIONS.get(error)
        reason = template.format(*detail) if template and len(detail) >= template.count("{") else error
        super().__init__(outcome, error, detail, f"registration rejected: {reason} ({error})")

    @property
    def registration_id(self) -> int | None:
        return self.detail[0] if self.detail and isinstance(self.detail[0], int) else None


@dataclass(frozen=True)
class RegistrationOutcome:
    """What the chain made of an upload (`kind`: "registered", "version", "takeover"; "submitted"
    without waiting). A novel registration may earn a PoD `reward` (base units), or a
    `not_rewarded` reason (TooSmall, TooLittleDetail, DailyLimit, ...)."""

    upload: PreparedUpload
    outcome: CallOutcome
    kind: str
    registration_id: int | None = None
    version_index: int | None = None
    previous_owner: bytes | None = None
    reward: int | None = None
    not_rewarded: str | None = None

    @property
    def watermarked(self) -> Path | None:
        return self.upload.watermarked

    @classmethod
    def from_outcome(cls, outcome: CallOutcome, upload: PreparedUpload) -> RegistrationOutcome:
        if outcome.block_hash is None:
            return cls(upload, outcome, "submitted")
        registered = outcome.find(copyright.Registered)
        version = outcome.find(copyright.VersionAdded)
        takeover = outcome.find(copyright.OwnershipTakenOver)
        rewarded = outcome.find(pod.Rewarded)
        skipped = outcome.find(pod.NotRewarded)
        if registered is not None:
            return cls(
                upload, outcome, "registered", registered.registration_id, 0,
                reward=rewarded.amount if rewarded is not None else None,
                not_rewarded=skipped.reason if skipped is not None else None,
            )  # fmt: skip
        if version is not None:
            kind = "takeover" if takeover is not None else "version"
            return cls(
                upload, outcome, kind, version.registration_id, version.index,
                previous_owner=takeover.previous if takeover is not None else None,
            )  # fmt: skip
        raise RpcClientError(f"registration included in {outcome.short_block} without a copyright event")


def register_image(
    client: RpcClient,
    signer: Keypair,
    path: str | os.PathLike[str],
    title: str,
    creator: str = "",
    description: str = "",
    *,
    raw: bool = False,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    wait: bool = True,
    tip: int = 0,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
) -> RegistrationOutcome:
    """Run the PoD pipeline on a file, submit the registration, and with `wait` report what the
    chain made of it.

    The watermarked copy is written before anything is submitted (to `out`, or next to the
    file as <name>.imagechain.png/.jpg); publish that copy, not the original. Raises
    `PodError` before submission for a file that cannot be registered (including a file the
    chain already has: checked right after hashing), `RegistrationRejected` (naming the
    existing registration) when the chain refuses it, e.g. as a near-duplicate.
    """

    def preflight(sha256: bytes) -> None:
        """Stop before the slow steps (and the fee) when the chain already has this exact file."""
        existing = client.find_by_sha256(sha256)
        if existing is not None:
            raise PodError(
                f"this exact file is already registered as registration #{existing.id} "
                f"(owner {encode_address(existing.owner)})",
                existing.id,
            )

    upload = prepare_file(
        path, genesis_hash=client.genesis_hash(), uploader=signer.account_id, title=title, creator=creator,
        description=description, raw=raw, out=out, progress=progress, preflight=preflight,
    )  # fmt: skip
    return submit_registration(client, signer, upload, wait=wait, tip=tip, timeout=timeout)


def submit_registration(
    client: RpcClient,
    signer: Keypair,
    upload: PreparedUpload,
    *,
    wait: bool = True,
    tip: int = 0,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
) -> RegistrationOutcome:
    """Submit a prepared upload (`pipeline.prepare_file` / `prepare_image`)."""
    try:
        outcome = submit_call(client, signer, register_call(upload), tip=tip, wait=wait, timeout=timeout)
    except CallFailed as exc:
        raise RegistrationRejected(exc.outcome, exc.error, exc.detail) from None
    return RegistrationOutcome.from_outcome(outcome, upload)
