"""A runtime error in words: its declaration's docstring with the detail's values filled in.

Every error a call can fail with is declared by its module (`@error`, `node.runtime.support`),
with detail fields and a docstring; the client has those declarations, so a failure read from
`ExtrinsicFailed` or a dry run is shown as "licensing.CannotBuyOwn: offer 3 is your own". A few
errors are declared without a docstring; `FALLBACK_DOCS` words them here until they get one.
"""

from __future__ import annotations

import re
from typing import Any

from node.keys import AddressError, decode_address, encode_address
from node.runtime.runtime import RUNTIME
from node.runtime.support import AccountId, Balance
from node.units import format_img

__all__ = ["FALLBACK_DOCS", "describe", "detail_from_json", "docs_of"]

# Errors declared without a docstring, worded the same way (backticks name detail fields).
FALLBACK_DOCS: dict[str, str] = {
    "copyright.TooManyVersions": "Registration `registration_id` has as many versions as a registration may have.",
    "copyright.UnknownRegistration": "There is no registration `registration_id`.",
    "copyright.NotOwner": "Only the owner of registration `registration_id` may do this.",
    "copyright.AlreadyOwner": "Registration `registration_id` is already yours.",
    "copyright.TagExists": "Registration `registration_id` has this tag already.",
    "copyright.TooManyTags": "Registration `registration_id` has as many tags as it may have.",
    "copyright.UnknownTag": "Registration `registration_id` has no such tag.",
    "licensing.UnknownRegistration": "There is no registration `registration_id`.",
    "licensing.NotOwner": "Only the owner of registration `registration_id` may offer licences of it.",
    "licensing.TooManyOffers": "Registration `registration_id` has as many open offers as it may have.",
    "licensing.UnknownOffer": "There is no open offer `offer_id` (never made, or withdrawn).",
    "licensing.NotSeller": "Only the account that made offer `offer_id` may withdraw it.",
    "licensing.CannotBuyOwn": "Offer `offer_id` is your own: you cannot buy from yourself.",
}

_FIELD = re.compile(r"`(\w+)`")


def docs_of(error: str) -> str:
    """The error's docstring as one line ("" for an error this runtime does not declare)."""
    declared = RUNTIME.errors.get(error)
    doc = " ".join((declared.__doc__ or "").split()) if declared is not None else ""
    return doc or FALLBACK_DOCS.get(error, "")


def _shown(spec_type: Any, value: Any) -> str:
    if spec_type is Balance and isinstance(value, int):
        return f"{format_img(value)} IMG"
    if spec_type is AccountId and isinstance(value, bytes) and len(value) == 32:
        return encode_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def describe(error: str, detail: tuple[Any, ...] = ()) -> str:
    """ "module.Error: what it means, with the detail's values in place of its field names"."""
    declared = RUNTIME.errors.get(error)
    specs = declared.FIELDS if declared is not None else ()
    values = {spec.name: _shown(spec.type, value) for spec, value in zip(specs, detail, strict=False)}
    doc = docs_of(error)
    if doc:
        used: set[str] = set()

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                used.add(name)
                return values[name]
            return match.group(0)

        text = _FIELD.sub(fill, doc).rstrip(".")
        rest = [f"{name} {value}" for name, value in values.items() if name not in used]
        return f"{error}: {text}" + (f" ({', '.join(rest)})" if rest else "")
    shown = ", ".join(values.values()) if values else ", ".join(str(d) for d in detail)
    return error + (f" ({shown})" if shown else "")


def detail_from_json(error: str, detail: dict[str, Any]) -> tuple[Any, ...]:
    """The detail tuple of an error from its JSON (`state_getEvents`, `system_dryRun`): addresses
    back to account ids, amounts from their "...Raw" strings."""
    declared = RUNTIME.errors.get(error)
    if declared is None:
        return tuple(detail.values())
    values: list[Any] = []
    for spec in declared.FIELDS:
        if spec.rest:
            break
        if spec.type is Balance:
            values.append(int(detail.get(spec.name + "Raw", 0)))
        elif spec.type is AccountId:
            try:
                values.append(decode_address(str(detail.get(spec.name, ""))))
            except AddressError:
                values.append(bytes.fromhex(str(detail.get(spec.name, ""))[2:]))
        elif spec.type is bytes:
            values.append(bytes.fromhex(str(detail.get(spec.name, "0x"))[2:]))
        else:
            values.append(detail.get(spec.name))
    return tuple(values)
