"""JSON of the runtime's copyright and licensing records, as every domain method returns them.

Accounts are SS58 addresses; hashes, pHashes and payloads 0x hex; amounts both ways: a decimal
string in IMG ("12.5") and the raw integer in base units ("...Raw", a JSON integer that may
exceed 2**53: parse it with a big-integer JSON reader). Timestamps are milliseconds since the
Unix epoch. The typed client reads these shapes back (`node.client.results`).
"""

from __future__ import annotations

from typing import Any

from node.keys import encode_address
from node.rpc.encoding import to_hex
from node.runtime import copyright, licensing
from node.units import format_img

__all__ = ["licence_json", "offer_json", "registration_json", "version_json"]


def version_json(index: int, version: copyright.Version) -> dict[str, Any]:
    return {
        "index": index,
        "sha256": to_hex(version.sha256),
        "phash": f"0x{version.phash:016x}",
        "width": version.width,
        "height": version.height,
        "format": copyright.FORMATS.get(version.format_code, "unknown"),
        "formatCode": version.format_code,
        "isRaw": version.is_raw,
        "uploader": encode_address(version.uploader),
        "block": version.block,
        "timestamp": version.timestamp_ms,
        "extrinsicIndex": version.ext_index,
        "watermark": to_hex(version.wm_payload),
        "blobRoots": [to_hex(root) for root in version.blob_roots],
    }


def registration_json(get: Any, registration: copyright.Registration) -> dict[str, Any]:
    """The registration with its versions and, read with `get`, its tags."""
    original = registration.original
    return {
        "id": registration.id,
        "owner": encode_address(registration.owner),
        "title": registration.title,
        "creator": registration.creator,
        "description": registration.description,
        "sha256": to_hex(original.sha256),
        "phash": f"0x{original.phash:016x}",
        "width": original.width,
        "height": original.height,
        "format": copyright.FORMATS.get(original.format_code, "unknown"),
        "isRaw": original.is_raw,
        "block": original.block,
        "timestamp": original.timestamp_ms,
        "versions": [version_json(i, v) for i, v in enumerate(registration.versions)],
        "tags": [
            {"tag": t.tag, "tagger": encode_address(t.tagger), "block": t.block}
            for t in copyright.tags_of(get, registration.id)
        ],
    }


def offer_json(offer: licensing.Offer, params: licensing.LicensingParams) -> dict[str, Any]:
    fee = licensing.licence_fee(params, offer.price)
    return {
        "id": offer.id,
        "registrationId": offer.registration_id,
        "seller": encode_address(offer.seller),
        "kind": licensing.KIND_NAMES.get(offer.kind, str(offer.kind)),
        "price": format_img(offer.price),
        "priceRaw": offer.price,
        "fee": format_img(fee),  # burned, paid by the buyer on top of the price
        "feeRaw": fee,
        "maxResolution": offer.max_resolution,
        "use": offer.use,
        "territory": offer.territory,
        "runSize": offer.run_size,
        "durationMs": offer.duration_ms,
        "exclusive": offer.exclusive,
        "createdBlock": offer.created_block,
    }


def licence_json(licence: licensing.Licence, now_ms: int) -> dict[str, Any]:
    return {
        "id": licence.id,
        "offerId": licence.offer_id,
        "registrationId": licence.registration_id,
        "licensee": encode_address(licence.licensee),
        "licensor": encode_address(licence.licensor),
        "kind": licensing.KIND_NAMES.get(licence.kind, str(licence.kind)),
        "price": format_img(licence.price),
        "priceRaw": licence.price,
        "fee": format_img(licence.fee),
        "feeRaw": licence.fee,
        "maxResolution": licence.max_resolution,
        "use": licence.use,
        "territory": licence.territory,
        "runSize": licence.run_size,
        "exclusive": licence.exclusive,
        "grantedAt": licence.granted_at_ms,
        "expiresAt": licence.expires_at_ms,
        "block": licence.block,
        "active": licence.is_active(now_ms),
    }
