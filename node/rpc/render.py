"""JSON of the runtime's records, events and metadata, as every method returns them.

Accounts are addresses (`system_properties` describes their format); hashes, pHashes and
payloads 0x hex; amounts both ways, both strings: in IMG ("12.5") and in base units ("...Raw",
"12500000000000000000"). Amounts are u128, and a JSON number above 2**53 is rounded by
JavaScript's JSON.parse, so no amount is ever a JSON number. Timestamps are milliseconds since
the Unix epoch. The typed client reads these shapes back (`node.client.results`).
"""

from __future__ import annotations

from typing import Any

from node.keys import encode_address
from node.rpc.encoding import to_hex
from node.runtime import copyright, licensing
from node.runtime.executive import DecodedEvent, Runtime
from node.runtime.support import AccountId, Balance, FieldSpec, StateGet, StorageMap, StorageValue
from node.units import format_img

__all__ = ["amount_json", "event_json", "licence_json", "metadata_json", "offer_json", "registration_json", "version_json"]


def amount_json(name: str, value: int) -> dict[str, str]:
    """`{name: "12.5", nameRaw: "12500000000000000000"}`: an amount in IMG and in base units."""
    return {name: format_img(value), name + "Raw": str(value)}


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
        "blobs": [{"kind": blob.kind, "root": to_hex(blob.root), "size": blob.size} for blob in version.blobs],
    }


def registration_json(get: StateGet, registration: copyright.Registration) -> dict[str, Any]:
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
        "priceRaw": str(offer.price),
        "fee": format_img(fee),  # burned, paid by the buyer on top of the price
        "feeRaw": str(fee),
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
        "priceRaw": str(licence.price),
        "fee": format_img(licence.fee),
        "feeRaw": str(licence.fee),
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


# ---------------------------------------------------------------------------------------------
# Events and runtime metadata, from the runtime's declarations
# ---------------------------------------------------------------------------------------------


def _value_json(spec: FieldSpec, value: Any, out: dict[str, Any], name: str) -> None:
    """One declared field: an AccountId as an address, a Balance both ways (IMG and raw)."""
    if spec.type is AccountId:
        out[name] = encode_address(value) if len(value) == 32 else to_hex(value)
    elif spec.type is Balance:
        out[name] = format_img(value)
        out[name + "Raw"] = str(value)
    elif isinstance(value, bytes):
        out[name] = to_hex(value)
    else:
        out[name] = value


def _fields_json(specs: tuple[FieldSpec, ...], values: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec, value in zip(specs, values, strict=False):
        if not spec.rest:
            _value_json(spec, value, out, spec.name)
    return out


def event_json(decoded: DecodedEvent) -> dict[str, Any]:
    """{phase, module, name, fields} of a decoded event; a failure adds `error` and its `detail`."""
    event = decoded.event
    specs = type(event).FIELDS
    out: dict[str, Any] = {
        "phase": decoded.phase,
        "module": decoded.module,
        "name": decoded.name,
        "fields": _fields_json(specs, tuple(getattr(event, spec.name) for spec in specs)),
    }
    if decoded.error is not None:
        out["fields"] = {
            "error": decoded.error.qualified_name(),
            "detail": _fields_json(decoded.error.FIELDS, decoded.error_detail),
            "docs": _docs(decoded.error),
        }
    return out


def _docs(declared: Any) -> str:
    return " ".join((declared.__doc__ or "").split())


def _type_name(spec: FieldSpec) -> str:
    return "detail" if spec.rest else getattr(spec.type, "__name__", str(spec.type))


def _storage_json(item: StorageValue[Any] | StorageMap[Any]) -> dict[str, Any]:
    if isinstance(item, StorageValue):
        return {"key": to_hex(item.key), "kind": "StorageValue"}
    return {"key": to_hex(item.prefix), "kind": "StorageMap", "keyParts": len(item.keys)}


def metadata_json(runtime: Runtime) -> dict[str, Any]:
    """The runtime's declared faces (FRAME's metadata): calls, events, errors, storage per module."""
    return {
        "specName": runtime.spec_name,
        "specVersion": runtime.spec_version,
        "modules": [
            {
                "name": module.name,
                "calls": [
                    {
                        "name": spec.name,
                        "arguments": len(spec.arg_types),
                        "weight": spec.weight,
                        "origin": "inherent" if spec.inherent else spec.origin.value,
                        "docs": _docs(spec.function),
                    }
                    for spec in module.call_specs
                ],
                "events": [
                    {"name": e.NAME, "fields": [{"name": f.name, "type": _type_name(f)} for f in e.FIELDS], "docs": _docs(e)}
                    for e in module.events
                ],
                "errors": [
                    {"name": e.NAME, "fields": [{"name": f.name, "type": _type_name(f)} for f in e.FIELDS], "docs": _docs(e)}
                    for e in module.errors
                ],
                "storage": [_storage_json(item) for item in module.storage],
            }
            for module in runtime.modules
        ],
    }
