"""Copyright commands: `imagechain image register|verify|show|history|list|tag|untag|transfer` and
`imagechain licence offer|buy|withdraw|list` (`license` is accepted too).

`register`, `verify` and the registration commands join the imaging tools' `image` group
(`node.commands.image.image_group`); `licence` is a group of its own (`licence_group`). Like the
wallet commands they talk to a node over JSON-RPC (`--url` or IMAGECHAIN_RPC_URL), sign with
`--from` (keystore file, dev URI or 0x seed), check with the node before sending
(`node.commands.common.send`), and print `key: value` lines a script can read, or `--json`.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any

import click

from node.client import RpcClient
from node.client.results import VerifyResult
from node.codec import u128_to_bytes
from node.commands.common import (
    Report,
    account_id,
    amount,
    client,
    first_run_notice,
    json_option,
    send,
    signer,
    tx_options,
    url_option,
    when,
)
from node.commands.image import image_group
from node.keys import encode_address
from node.runtime import copyright, licensing
from node.types import Call
from node.units import format_img

__all__ = ["licence_group", "license_group", "register_command", "verify_command"]

# Files at least this big get a progress bar while they are read and hashed.
BIG_FILE_BYTES = 16 * 1024 * 1024
# The node takes at most 7 MiB per verification; larger files are sent as a JPEG of this long edge.
VERIFY_UPLOAD_LIMIT = 7 * 1024 * 1024
VERIFY_LONG_EDGE = 4096
_DURATION = re.compile(r"^(\d+)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

_when = when


def _duration_ms(text: str) -> int:
    match = _DURATION.match(text.strip().lower())
    if match is None:
        raise click.BadParameter(
            "expected a number with a unit: 500ms, 90s, 30m, 12h or 30d", param_hint="--duration"
        )
    value = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if value <= 0:
        raise click.BadParameter("the duration must be more than zero", param_hint="--duration")
    return value


# ---------------------------------------------------------------------------------------------
# image register / verify
# ---------------------------------------------------------------------------------------------


@click.command("register")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--title", required=True, help="Title of the work (at most 256 characters).")
@click.option("--creator", default="", help="Creator's name as it should be recorded.")
@click.option("--description", default="", help="Free text (at most 2048 characters).")
@click.option(
    "--raw",
    is_flag=True,
    help="FILE is the camera RAW original (needed to take over a registered image); refused if it is not RAW.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the watermarked copy [default: FILE's name + .imagechain.png, .jpg for JPEG].",
)
@tx_options
def register_command(
    file: Path, title: str, creator: str, description: str, raw: bool, out: Path | None, sender: str, scheme: str,
    password_file: Path | None, tip: str, mortality: int, no_wait: bool, force: bool, as_json: bool, url: str,
) -> None:  # fmt: skip
    """Watermark FILE, register it on chain and write the watermarked copy to publish.

    The copy carries a payload bound to this chain, this file and the signer; anyone can trace
    it back with `imagechain image verify`. It keeps FILE's EXIF (camera, artist, copyright) and
    names the claim in XMP and EXIF rights fields. Publish the copy, not the original. A flat
    image, a file already registered and a near-duplicate that could be no version are refused
    before anything is signed (--force sends a near-duplicate anyway).
    """
    from node.pod_mining.pipeline import PodError
    from node.pod_mining.upload import RegistrationRejected, register_image

    tip_value = amount(tip, "--tip")
    size = file.stat().st_size
    progress = _ReadProgress(file.name)
    target = out if out is not None else _default_out(file)
    existed = target is not None and target.exists()
    report = Report(as_json)
    with client(url) as rpc, progress:
        from_ = signer(rpc, sender, scheme, password_file)
        click.echo(f"Watermarking {file} ({size:,} bytes) for {from_.address}...", err=True)
        try:
            with first_run_notice():
                result = register_image(
                    rpc, from_, file, title, creator, description, raw=raw, out=out, progress=progress,
                    wait=not no_wait, tip=tip_value, force=force,
                )  # fmt: skip
        except PodError as exc:
            raise click.ClickException(" ".join(str(exc).split())) from exc
        except RegistrationRejected as exc:
            _drop_copy(target, existed)
            hint = "" if exc.sent else " (--force sends it anyway)"
            raise click.ClickException(f"{exc}{hint}") from exc
        except click.ClickException:
            raise
        except Exception as exc:
            # Refused for good: the copy's payload will never be on chain, so a copy this run
            # created must not circulate (one that existed before is left alone). A timeout or a
            # lost connection is not "for good": the registration may still land; keep the copy.
            from node.client import CallRefused, RpcError, TransactionFailed, Unsendable

            if isinstance(exc, RpcError | CallRefused | TransactionFailed | Unsendable):
                _drop_copy(target, existed)
            raise
        upload = result.upload
        report.put("watermarked", str(result.watermarked))
        report.put("sha256", f"0x{upload.sha256.hex()}")
        report.put("image", f"{upload.width}x{upload.height} {upload.format_name}{' (RAW)' if upload.is_raw else ''}")
        report.put("phash", f"0x{upload.phash:016x}")
        report.put("payload", f"0x{upload.payload.hex()}")
        report.put("extrinsic", f"0x{result.outcome.ext_hash.hex()}")
        if result.outcome.fee is not None:
            report.amount("fee", result.outcome.fee)
        if result.outcome.block_hash is None:
            report.put("registration", "pending (submitted; not waiting for a block: --no-wait)", None)
            report.done()
            return
        report.put("registration", str(result.registration_id), result.registration_id)
        if result.kind == "registered":
            report.put("result", "new registration")
        elif result.kind == "version":
            report.put("result", f"version {result.version_index} of registration {result.registration_id}")
        else:
            previous = encode_address(result.previous_owner) if result.previous_owner else "?"
            report.put(
                "result",
                f"RAW version {result.version_index}; ownership of registration {result.registration_id} "
                f"taken over from {previous}",
            )
        report.block("block", result.outcome.block_number, result.outcome.block_hash)
        if result.reward is not None:
            report.amount("reward", result.reward)
        elif result.not_rewarded is not None:
            reason = result.not_rewarded_reason(rpc.pod_params())
            report.put("reward", f"none ({reason})", None)
            if as_json:
                report.put("notRewarded", reason)
    report.done()


def _drop_copy(target: Path | None, existed: bool) -> None:
    """A copy this run wrote whose payload will never be on chain must not circulate."""
    if target is not None and not existed and target.exists():
        target.unlink()
        click.echo(f"removed {target}: its watermark is not registered", err=True)


class _ReadProgress:
    """A progress bar on stderr while a big file is read and hashed (small files read too fast to need one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if total < BIG_FILE_BYTES:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=f"Reading {self.name}", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> _ReadProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _default_out(file: Path) -> Path | None:
    from node.pod_mining.pipeline import PodError, default_output_path, detect_format

    try:
        return default_output_path(file, detect_format(file)[0])
    except PodError:
        return None


def _verify_bytes(file: Path) -> bytes:
    """The file as the node should see it: as is when it fits, else a JPEG 95 at most 4096 px long.

    The watermark and the pHash survive both (they are read on a 256x256 rendition), and camera
    RAW, which the node does not decode, is decoded here.
    """
    from node.imaging import io as imio

    if file.stat().st_size <= VERIFY_UPLOAD_LIMIT and not imio.is_raw(file):
        return file.read_bytes()
    from PIL import Image

    try:
        image = Image.fromarray(imio.load_rgb(file))
    except imio.UnsupportedRawError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{file}: cannot decode the image: {exc}") from exc
    if max(image.size) > VERIFY_LONG_EDGE:
        image.thumbnail((VERIFY_LONG_EDGE, VERIFY_LONG_EDGE), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    click.echo(f"sending a {image.size[0]}x{image.size[1]} JPEG rendering of {file.name}", err=True)
    return buffer.getvalue()


@click.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@url_option
def verify_command(file: Path, as_json: bool, url: str) -> None:
    """Find who registered FILE: by its watermarks (exact) or its pHash (similar). Exit 1 if nobody.

    A flat image (no structure at the pHash's scale) matches by its watermark only."""
    data = _verify_bytes(file)
    report = Report(as_json)
    with client(url) as rpc:
        result = rpc.verify_image(data)
        report.put("phash", f"0x{result.phash:016x}")
        report.put("watermark", "0x" + result.watermark.hex() if result.watermark else "none",
                   "0x" + result.watermark.hex() if result.watermark else None)  # fmt: skip
        if len(result.watermarks) > 1:
            marks = ", ".join("0x" + w.hex() for w in result.watermarks)
            report.put("watermarks", f"{marks} (marked more than once: the earliest registration comes first)",
                       ["0x" + w.hex() for w in result.watermarks])  # fmt: skip
        best = result.best
        if best is None:
            report.put("match", f"none ({_no_match(result)})", None)
            report.done()
            raise SystemExit(1)
        registration = best.registration
        report.put("match", best.kind)
        report.put("registration", str(registration.id), registration.id)
        report.put("owner", encode_address(registration.owner))
        block_hash = rpc.block_hash(registration.block)
        report.block("block", registration.block, block_hash)
        report.put("registered", _when(registration.timestamp_ms))
        distance = f"{best.distance} (version {best.version}; radius {result.radius})"
        if result.flat:
            distance += "; the copy is flat at the pHash's scale: matched by its watermark only"
        report.put("distance", distance, best.distance)
        report.put("title", registration.title)
        if registration.creator:
            report.put("creator", registration.creator)
        report.put("versions", str(len(registration.versions)), len(registration.versions))
        if best.offers:
            params = rpc.licensing_params()
            for offer in best.offers:
                report.add("offer", _offer_line(offer, params), _offer_json(offer, params))
        for other in result.matches[1:]:
            report.add(
                "also",
                f"{other.kind} registration {other.registration.id} (distance {other.distance}), "
                f"owner {encode_address(other.owner)}, block #{other.registration.block}",
                {"kind": other.kind, "registration": other.registration.id, "distance": other.distance},
            )  # fmt: skip
    report.done()


def _no_match(result: VerifyResult) -> str:
    """Why nothing matched, with how far the nearest registration was."""
    if result.flat:
        return (
            f"the image is flat at the pHash's scale (structure {result.phash_energy:,} < "
            f"{result.min_phash_energy:,}), so its pHash says nothing, and it carries no registered watermark"
        )
    if result.nearest is None:
        return f"no registration within {copyright.MAX_SEARCH_RADIUS} bits of its pHash; the radius is {result.radius}"
    rid, distance = result.nearest
    return f"nearest: registration {rid} at distance {distance}; the radius is {result.radius}"


image_group.add_command(register_command)
image_group.add_command(verify_command)


# ---------------------------------------------------------------------------------------------
# image show / history / list / tag / untag / transfer
# ---------------------------------------------------------------------------------------------


def _registration(rpc: RpcClient, registration_id: int) -> copyright.Registration:
    found = rpc.get_registration(registration_id)
    if found is None:
        raise click.ClickException(f"there is no registration {registration_id}")
    return found


def _version_line(index: int, version: copyright.Version) -> str:
    raw = " RAW" if version.is_raw else ""
    return (
        f"{index}: {version.width}x{version.height} {copyright.FORMATS.get(version.format_code, '?')}{raw}, "
        f"block #{version.block} ({_when(version.timestamp_ms)}), uploader {encode_address(version.uploader)}, "
        f"sha256 0x{version.sha256.hex()}"
    )


def _version_json(index: int, version: copyright.Version) -> dict[str, Any]:
    return {
        "index": index, "width": version.width, "height": version.height,
        "format": copyright.FORMATS.get(version.format_code, "?"), "isRaw": version.is_raw, "block": version.block,
        "timestamp": version.timestamp_ms, "uploader": encode_address(version.uploader),
        "sha256": "0x" + version.sha256.hex(), "phash": f"0x{version.phash:016x}",
        "watermark": "0x" + version.wm_payload.hex(),
    }  # fmt: skip


@image_group.command("show")
@click.argument("registration_id", type=click.IntRange(1))
@json_option
@url_option
def show_command(registration_id: int, as_json: bool, url: str) -> None:
    """Show a registration: owner, title, the original, its versions, tags and open offers."""
    report = Report(as_json)
    with client(url) as rpc:
        registration = _registration(rpc, registration_id)
        original = registration.original
        report.put("registration", str(registration.id), registration.id)
        report.put("owner", encode_address(registration.owner))
        report.put("title", registration.title)
        report.put("creator", registration.creator)
        if registration.description:
            report.put("description", registration.description)
        report.block("block", original.block, rpc.block_hash(original.block))
        report.put("registered", _when(original.timestamp_ms))
        report.put("image", f"{original.width}x{original.height} {copyright.FORMATS.get(original.format_code, '?')}")
        report.put("sha256", "0x" + original.sha256.hex())
        report.put("phash", f"0x{original.phash:016x}")
        report.put("versions", str(len(registration.versions)), len(registration.versions))
        tags = rpc.call("copyright_getRegistration", registration_id)["tags"]
        for tag in tags:
            report.add("tag", f"{tag['tag']} (by {tag['tagger']}, block #{tag['block']})", tag)
        params = rpc.licensing_params()
        for offer in rpc.licence_offers(registration_id):
            report.add("offer", _offer_line(offer, params), _offer_json(offer, params))
    report.done()


@image_group.command("history")
@click.argument("registration_id", type=click.IntRange(1))
@json_option
@url_option
def history_command(registration_id: int, as_json: bool, url: str) -> None:
    """List a registration's versions in the order they were added (version 0 is the original)."""
    report = Report(as_json)
    with client(url) as rpc:
        registration = _registration(rpc, registration_id)
        report.put("registration", str(registration.id), registration.id)
        report.put("owner", encode_address(registration.owner))
        for index, version in enumerate(registration.versions):
            report.add("version", _version_line(index, version), _version_json(index, version))
    report.done()


@image_group.command("list")
@click.argument("owner")
@json_option
@url_option
def list_registrations_command(owner: str, as_json: bool, url: str) -> None:
    """List the registrations an account owns (OWNER: address or dev URI)."""
    who = account_id(owner, "OWNER")
    report = Report(as_json)
    with client(url) as rpc:
        ids: list[int] = []
        while True:
            page = rpc.registrations_of(who, len(ids), 1000)
            ids += page
            if len(page) < 1000:
                break
        report.put("owner", encode_address(who))
        for rid in sorted(ids):
            registration = rpc.get_registration(rid)
            if registration is None:
                continue
            report.add(
                "registration",
                f"{rid} {registration.title!r}, {len(registration.versions)} version(s), block #{registration.block}",
                {"id": rid, "title": registration.title, "versions": len(registration.versions), "block": registration.block},
            )  # fmt: skip
        if not ids:
            report.note(f"no registrations owned by {encode_address(who)}")
    report.done()


def _tx(
    call: Call, sender: str, scheme: str, password_file: Path | None, tip: str, mortality: int, no_wait: bool,
    force: bool, as_json: bool, url: str, fields: dict[str, Any],
) -> None:  # fmt: skip
    """Send one call of a registration command and report it."""
    tip_value = amount(tip, "--tip")
    report = Report(as_json)
    with client(url) as rpc:
        keypair = signer(rpc, sender, scheme, password_file)
        for key, value in fields.items():
            report.put(key, str(value), value)
        send(rpc, keypair, call, report, tip=tip_value, mortality=mortality, no_wait=no_wait, force=force)
    report.done()


@image_group.command("tag")
@click.argument("registration_id", type=click.IntRange(1))
@click.argument("tag")
@tx_options
def tag_command(registration_id: int, tag: str, **tx: Any) -> None:
    """Tag any registration; the chain's tag fee is burned (spam control)."""
    _tx(Call("copyright", "tag", (registration_id, tag)), fields={"registration": registration_id, "tag": tag}, **tx)


@image_group.command("untag")
@click.argument("registration_id", type=click.IntRange(1))
@click.argument("tag")
@tx_options
def untag_command(registration_id: int, tag: str, **tx: Any) -> None:
    """Remove a tag from a registration you own (the tagger's fee is not returned)."""
    _tx(Call("copyright", "untag", (registration_id, tag)), fields={"registration": registration_id, "untag": tag}, **tx)


@image_group.command("transfer")
@click.argument("registration_id", type=click.IntRange(1))
@click.option("--to", "dest", required=True, help="The new owner: address (or a dev URI such as //Bob).")
@tx_options
def transfer_ownership_command(registration_id: int, dest: str, **tx: Any) -> None:
    """Hand a registration you own to another account; its open licence offers are withdrawn."""
    new_owner = account_id(dest, "--to")
    call = Call("copyright", "transfer_ownership", (registration_id, new_owner))
    _tx(call, fields={"registration": registration_id, "to": encode_address(new_owner)}, **tx)


# ---------------------------------------------------------------------------------------------
# licence
# ---------------------------------------------------------------------------------------------


def _offer_line(offer: licensing.Offer, params: licensing.LicensingParams) -> str:
    fee = licensing.licence_fee(params, offer.price)
    head = f"#{offer.id} {licensing.KIND_NAMES.get(offer.kind, '?')} {format_img(offer.price)} IMG (+ {format_img(fee)} IMG fee, burned)"
    if offer.kind == licensing.KIND_RF:
        size = "any resolution" if offer.max_resolution == 0 else f"up to {offer.max_resolution:,} pixels"
        return f"{head}, perpetual, non-exclusive, {size}"
    runs = "unlimited copies" if offer.run_size == 0 else f"{offer.run_size:,} copies"
    days = offer.duration_ms / 86_400_000
    exclusive = ", exclusive" if offer.exclusive else ""
    return f"{head}, use: {offer.use or '-'}, territory: {offer.territory or '-'}, {runs}, {days:g} days{exclusive}"


def _offer_json(offer: licensing.Offer, params: licensing.LicensingParams) -> dict[str, Any]:
    return {
        "id": offer.id, "registration": offer.registration_id, "seller": encode_address(offer.seller),
        "kind": licensing.KIND_NAMES.get(offer.kind, "?"), "price": format_img(offer.price),
        "fee": format_img(licensing.licence_fee(params, offer.price)), "maxResolution": offer.max_resolution,
        "use": offer.use, "territory": offer.territory, "runSize": offer.run_size, "durationMs": offer.duration_ms,
        "exclusive": offer.exclusive,
    }  # fmt: skip


@click.group("licence")
def licence_group() -> None:
    """Offer, buy, withdraw and list image licences (paid in IMG; the licence fee is burned)."""


# The spelling the issue settled on is "licence"; `imagechain license ...` keeps working.
license_group = click.Group("license", commands=licence_group.commands, hidden=True,
                            help="The same as `imagechain licence`.")  # fmt: skip


@licence_group.command("offer")
@click.argument("registration_id", type=click.IntRange(1))
@click.option("--price", required=True, help="Price in IMG; the owner receives all of it.")
@click.option(
    "--kind",
    type=click.Choice(["rf", "rm"], case_sensitive=False),
    default="rf",
    show_default=True,
    help="rf: royalty free (perpetual, non-exclusive); rm: rights managed (terms, expiry).",
)
@click.option("--max-resolution", type=click.IntRange(0), default=0, help="RF: largest licensed size in pixels (0 = any).")
@click.option("--use", default="", help="RM: the licensed use, e.g. 'editorial, web'.")
@click.option("--territory", default="", help="RM: where, e.g. 'EU'.")
@click.option("--run-size", type=click.IntRange(0), default=0, help="RM: number of copies (0 = unlimited).")
@click.option("--duration", default=None, help="RM: how long each licence runs, e.g. 30d, 12h.")
@click.option("--exclusive", is_flag=True, help="RM: while it runs, nobody else can license the image.")
@tx_options
def offer_command(
    registration_id: int, price: str, kind: str, max_resolution: int, use: str, territory: str, run_size: int,
    duration: str | None, exclusive: bool, sender: str, scheme: str, password_file: Path | None, tip: str,
    mortality: int, no_wait: bool, force: bool, as_json: bool, url: str,
) -> None:  # fmt: skip
    """Offer a licence of a registration you own; prints the offer id."""
    value = amount(price, "--price")
    tip_value = amount(tip, "--tip")
    rm = kind.lower() == "rm"
    if not rm and (duration or exclusive or use or territory or run_size):
        raise click.UsageError("--use, --territory, --run-size, --duration and --exclusive need --kind rm")
    if rm and duration is None:
        raise click.UsageError("an RM offer needs --duration (e.g. 30d)")
    if rm:
        assert duration is not None
        args = (registration_id, u128_to_bytes(value), use, territory, run_size, _duration_ms(duration), exclusive)
        call = Call("licensing", "offer_rm", args)
    else:
        call = Call("licensing", "offer_rf", (registration_id, u128_to_bytes(value), max_resolution))
    report = Report(as_json)
    with client(url) as rpc:
        keypair = signer(rpc, sender, scheme, password_file)
        outcome = send(rpc, keypair, call, report, tip=tip_value, mortality=mortality, no_wait=no_wait, force=force)
        offered = outcome.find(licensing.Offered)
        if offered is not None:
            report.put("offer", str(offered.offer_id), offered.offer_id)
        report.put("registration", str(registration_id), registration_id)
        report.amount("price", value)
    report.done()


def check_purchase(rpc: RpcClient, buyer: bytes, offer: licensing.Offer) -> None:
    """Refuse, before signing, a purchase that would succeed but buy nothing new: a licence from
    this very offer that the buyer holds and that is still active (an RF licence is perpetual)."""
    now_ms = _chain_now(rpc)
    held = [lic for lic in rpc.licences_of(buyer, 0, 1000) if lic.offer_id == offer.id and lic.is_active(now_ms)]
    if held:
        until = "perpetual" if held[0].expires_at_ms == 0 else f"until {_when(held[0].expires_at_ms)}"
        raise click.ClickException(
            f"not sent: you already hold licence #{held[0].id} from offer #{offer.id} "
            f"({licensing.KIND_NAMES.get(offer.kind, '?')}, {until}); buying it again pays "
            f"{format_img(offer.price)} IMG and the licence fee again (--force buys it anyway)"
        )


@licence_group.command("buy")
@click.argument("offer_id", type=click.IntRange(1))
@tx_options
def buy_command(
    offer_id: int, sender: str, scheme: str, password_file: Path | None, tip: str, mortality: int, no_wait: bool,
    force: bool, as_json: bool, url: str,
) -> None:  # fmt: skip
    """Buy a licence from an offer: the price goes to the owner, the licence fee is burned.

    Refused before anything is signed when the chain would refuse it (an unknown offer, your own
    offer, too little transferable money) or when you already hold an active licence from this
    very offer; --force sends it anyway."""
    tip_value = amount(tip, "--tip")
    report = Report(as_json)
    with client(url) as rpc:
        keypair = signer(rpc, sender, scheme, password_file)
        offer = rpc.offer(offer_id)
        if offer is not None and not force:
            check_purchase(rpc, keypair.account_id, offer)
        outcome = send(rpc, keypair, Call("licensing", "purchase", (offer_id,)), report, tip=tip_value,
                       mortality=mortality, no_wait=no_wait, force=force)  # fmt: skip
        purchase = outcome.find(licensing.Purchased)
        if purchase is not None:
            report.put("licence", str(purchase.licence_id), purchase.licence_id)
            report.put("registration", str(purchase.registration_id), purchase.registration_id)
            report.put("seller", encode_address(purchase.seller))
            report.amount("price", purchase.price)
            report.put("licence fee", f"{format_img(purchase.fee)} IMG (burned)", format_img(purchase.fee))
            report.put("expires", "never" if purchase.expires_at_ms == 0 else _when(purchase.expires_at_ms))
    report.done()


@licence_group.command("withdraw")
@click.argument("offer_id", type=click.IntRange(1))
@tx_options
def withdraw_command(offer_id: int, **tx: Any) -> None:
    """Withdraw an offer you made (licences already sold stay valid)."""
    _tx(Call("licensing", "withdraw_offer", (offer_id,)), fields={"offer": offer_id}, **tx)


@licence_group.command("list")
@click.argument("registration_id", type=click.IntRange(1), required=False)
@click.option("--holder", default=None, help="List the licences this address bought instead.")
@json_option
@url_option
def list_command(registration_id: int | None, holder: str | None, as_json: bool, url: str) -> None:
    """List the open offers of REGISTRATION_ID, or with --holder the licences an account holds."""
    if (registration_id is None) == (holder is None):
        raise click.UsageError("give either REGISTRATION_ID (its offers) or --holder ADDRESS (licences held)")
    report = Report(as_json)
    with client(url) as rpc:
        if registration_id is not None:
            _registration(rpc, registration_id)
            offers = rpc.licence_offers(registration_id)
            params = rpc.licensing_params()
            for offer in offers:
                report.add("offer", _offer_line(offer, params), _offer_json(offer, params))
            if not offers:
                report.note(f"no open offers for registration {registration_id}")
            report.done()
            return
        assert holder is not None
        account = account_id(holder, "--holder")
        licences = rpc.licences_of(account)
        now_ms = _chain_now(rpc)
        for licence in licences:
            state = "active" if licence.is_active(now_ms) else "expired"
            until = "perpetual" if licence.expires_at_ms == 0 else f"until {_when(licence.expires_at_ms)}"
            kind = licensing.KIND_NAMES.get(licence.kind, "?")
            report.add(
                "licence",
                f"#{licence.id} registration {licence.registration_id} {kind} {format_img(licence.price)} IMG, {until}, {state}",
                {"id": licence.id, "offer": licence.offer_id, "registration": licence.registration_id, "kind": kind,
                 "price": format_img(licence.price), "expiresAt": licence.expires_at_ms, "active": state == "active"},
            )  # fmt: skip
        if not licences:
            report.note(f"no licences held by {encode_address(account)}")
    report.done()


def _chain_now(rpc: RpcClient) -> int:
    from node.runtime import timestamp

    raw = rpc.storage(timestamp.KEY_NOW)
    return 0 if raw is None else int.from_bytes(raw, "big")
