"""An image registration through a node: the pipeline's steps, with the chain's answers in between.

`register_image(client, signer, path, ...)` asks the node for the genesis hash (the watermark
key and payload depend on it), runs `pipeline.prepare_file` with a preflight that stops at once
when the chain already has this exact file and a screen that stops, before the slow steps, an
image the chain would refuse (flat at the pHash's scale; a near-duplicate of a registration it
can be no version of), then signs it, asks the node's dry run, submits `copyright.register`
through `node.client.transactions` and reads what the chain made of it from the events. A
predicted refusal costs nothing: nothing is sent. The pipeline
itself never talks to a node; the client knows nothing of images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from node.client.rpc import RpcClient
from node.client.transactions import (
    DEFAULT_INCLUSION_TIMEOUT_S,
    CallFailed,
    CallOutcome,
    CallRefused,
    WouldFail,
    submit_call,
)
from node.client.transport import RpcClientError
from node.keys import Keypair, encode_address
from node.pod_mining.pipeline import PodError, PreparedUpload, Progress, prepare_file, register_call
from node.runtime import copyright, pod
from node.units import format_img

__all__ = ["RegistrationOutcome", "RegistrationRejected", "check_registrable", "register_image", "submit_registration"]

_REJECTIONS = {
    "copyright.DuplicateSha256": "this exact file is already registered as registration #{0}",
    "copyright.NearDuplicate": (
        "the image is a near-duplicate of registration #{0} (pHash distance {1}); only a version with more "
        "pixels than its largest, or the RAW original, can be added"
    ),
    "copyright.PayloadTaken": "its watermark payload is already used by registration #{0}",
    "copyright.TooManyVersions": "registration #{0} already has the maximum number of versions",
}


class RegistrationRejected(CallRefused):
    """The chain refuses (or, asked first, would refuse) a registration by its ownership rules;
    `registration_id` is the image it collided with (None for errors that name none). `outcome`
    is the failed extrinsic's when it was sent (its fee paid), None when it was not."""

    def __init__(
        self, error: str, detail: tuple[Any, ...] = (), outcome: CallOutcome | None = None, fee: int | None = None
    ) -> None:
        template = _REJECTIONS.get(error)
        reason = template.format(*detail) if template and len(detail) >= template.count("{") else error
        fee = outcome.fee if outcome is not None else fee
        if outcome is not None:
            where = f"failed in block {outcome.block}" + (f"; fee paid: {format_img(fee)} IMG" if fee is not None else "")
        else:
            where = "not sent, nothing paid"
        super().__init__(error, detail, fee, f"registration rejected: {reason} ({error}); {where}")
        self.outcome = outcome

    @property
    def sent(self) -> bool:  # type: ignore[override]
        return self.outcome is not None

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

    def not_rewarded_reason(self, params: pod.PodParams) -> str | None:
        """Why no reward, with the threshold the upload missed ("TooSmall: 720x477 < 1024x576")."""
        reason = self.not_rewarded
        if reason == "TooSmall":
            width, height = self.upload.width, self.upload.height
            return f"TooSmall: {width}x{height} < {params.min_long_edge}x{params.min_short_edge} (long x short edge)"
        if reason == "TooLittleDetail":
            detail = pod.detail_of(self.upload.rendition)
            return f"TooLittleDetail: detail {detail} < {params.min_detail}"
        if reason == "DailyLimit":
            return f"DailyLimit: {params.daily_limit} rewards a day per account"
        return reason

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
    force: bool = False,
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

    params = client.copyright_params()

    def screen(rgb: np.ndarray, format_code: int, is_raw: bool) -> None:
        """Before watermarking: a flat image is refused by every validator, and a near-duplicate that
        can be no version (not more pixels, not a RAW takeover) fails on chain and pays its fee."""
        check_registrable(client, params, rgb, is_raw, force=force)

    upload = prepare_file(
        path, genesis_hash=client.genesis_hash(), uploader=signer.account_id, title=title, creator=creator,
        description=description, raw=raw, out=out, progress=progress, preflight=preflight, screen=screen,
        chain_name=client.chain_name(), min_phash_energy=params.min_phash_energy,
    )  # fmt: skip
    return submit_registration(client, signer, upload, wait=wait, tip=tip, timeout=timeout, force=force)


def check_registrable(
    client: RpcClient, params: copyright.CopyrightParams, rgb: np.ndarray, is_raw: bool, *, force: bool = False
) -> None:
    """Raise PodError for an image without structure at the pHash's scale, and (unless `force`)
    `RegistrationRejected` for a near-duplicate of a registration it could not become a version
    of. Judged on the original's pixels: the watermark moves the pHash by a bit or two at most,
    and the node's dry run judges the marked copy before it is sent."""
    from node.imaging.phash import low_frequency_energy, phash_from_rendition
    from node.imaging.rendition import verification_rendition

    rendition = verification_rendition(rgb)
    energy = low_frequency_energy(rendition)
    if energy < params.min_phash_energy:
        raise PodError(
            f"the image is flat at the pHash's scale (structure {energy:,} < {params.min_phash_energy:,}, the "
            "chain's min_phash_energy): a flat image matches every other flat image, so validators refuse it"
        )
    if force:
        return
    found = client.search_similar(phash_from_rendition(rendition), params.phash_radius)
    if not found:
        return
    registration_id, distance = found[0]
    registration = client.get_registration(registration_id)
    if registration is None:
        return
    pixels = rgb.shape[0] * rgb.shape[1]
    highest = registration.highest.pixels
    if pixels > highest or (is_raw and pixels >= highest):
        return  # a new version (or a RAW takeover): the chain takes it
    raise RegistrationRejected("copyright.NearDuplicate", (registration_id, distance))


def submit_registration(
    client: RpcClient,
    signer: Keypair,
    upload: PreparedUpload,
    *,
    wait: bool = True,
    tip: int = 0,
    timeout: float = DEFAULT_INCLUSION_TIMEOUT_S,
    force: bool = False,
) -> RegistrationOutcome:
    """Submit a prepared upload (`pipeline.prepare_file` / `prepare_image`), after the node's dry
    run unless `force`."""
    try:
        outcome = submit_call(
            client, signer, register_call(upload), tip=tip, wait=wait, timeout=timeout, force=force
        )
    except WouldFail as exc:
        raise RegistrationRejected(exc.error, exc.detail, fee=exc.fee) from None
    except CallFailed as exc:
        raise RegistrationRejected(exc.error, exc.detail, exc.outcome) from None
    return RegistrationOutcome.from_outcome(outcome, upload)
