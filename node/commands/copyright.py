"""Copyright commands: `imagechain image register|verify` and `imagechain license offer|buy|list`.

`register` and `verify` join the imaging tools' `image` group (`node.commands.image.image_group`);
`license` is a group of its own (`license_group`). Like the wallet commands they talk to a node
over JSON-RPC (`--url` or IMAGECHAIN_RPC_URL) through `node.client.RpcClient`, sign with
`--from` (keystore file, dev URI or 0x seed), and print `key: value` lines a script can read.
"""

from __future__ import annotations

import io
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from node.client import CallFailed, RpcClient, RpcError, TransactionFailed
from node.client.licensing import buy_licence, offer_licence_rf, offer_licence_rm
from node.commands.image import image_group
from node.commands.wallet import _SCHEME_CHOICE, _account_id, _amount, _client, _signer, _url_option
from node.keys import encode_address
from node.runtime import licensing
from node.units import format_img

__all__ = ["license_group", "register_command", "verify_command"]

# Files at least this big get a progress bar while they are read and hashed.
BIG_FILE_BYTES = 16 * 1024 * 1024
# The node takes at most 7 MiB per verification; larger files are sent as a JPEG of this long edge.
VERIFY_UPLOAD_LIMIT = 7 * 1024 * 1024
VERIFY_LONG_EDGE = 4096
_DURATION = re.compile(r"^(\d+)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _signer_options(function: Any) -> Any:
    """--from, --scheme, --password-file, --tip and --url, as `tx transfer` takes them."""
    function = _url_option(function)
    for option in reversed(
        [
            click.option(
                "--from", "sender", required=True, help="Signer: keystore file, dev URI (//Alice) or 0x seed."
            ),
            click.option(
                "--scheme",
                type=_SCHEME_CHOICE,
                default="ed25519",
                show_default=True,
                help="Scheme of a URI or seed signer.",
            ),
            click.option(
                "--password-file",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="Keystore password file (else IMAGECHAIN_PASSWORD, else a prompt).",
            ),
            click.option("--tip", default="0", show_default=True, help="Tip in IMG for the block author."),
        ]
    ):
        function = option(function)
    return function


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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
@click.option(
    "--no-wait", is_flag=True, help="Return once the node accepted it, without waiting for a block."
)
@_signer_options
def register_command(
    file: Path,
    title: str,
    creator: str,
    description: str,
    raw: bool,
    out: Path | None,
    no_wait: bool,
    sender: str,
    scheme: str,
    password_file: Path | None,
    tip: str,
    url: str,
) -> None:
    """Watermark FILE, register it on chain and write the watermarked copy to publish.

    The copy carries a payload bound to this chain, this file and the signer; anyone can trace
    it back with `imagechain image verify`. Publish the copy, not the original.
    """
    from node.pod_mining.pipeline import PodError
    from node.pod_mining.upload import register_image

    from_ = _signer(sender, scheme, password_file)
    tip_value = _amount(tip, "--tip")
    size = file.stat().st_size
    progress = _ReadProgress(file.name)
    target = out if out is not None else _default_out(file)
    existed = target is not None and target.exists()
    with _client(url) as client, progress:
        click.echo(f"Watermarking {file} ({size:,} bytes) for {from_.address}...", err=True)
        try:
            result = register_image(
                client, from_, file, title, creator, description, raw=raw, out=out, progress=progress,
                wait=not no_wait, tip=tip_value,
            )  # fmt: skip
        except PodError as exc:
            raise click.ClickException(str(exc)) from exc
        except (RpcError, CallFailed, TransactionFailed) as exc:
            # Refused for good: the copy's payload will never be on chain, so a copy this run
            # created must not circulate (one that existed before is left alone). A timeout or a
            # lost connection is not "for good": the registration may still land; keep the copy.
            if target is not None and not existed and target.exists():
                target.unlink()
                click.echo(f"removed {target}: its watermark is not registered", err=True)
            raise click.ClickException(str(exc)) from exc
        upload = result.upload
        click.echo(f"watermarked: {result.watermarked}")
        click.echo(f"sha256: 0x{upload.sha256.hex()}")
        click.echo(
            f"image: {upload.width}x{upload.height} {upload.format_name}{' (RAW)' if upload.is_raw else ''}"
        )
        click.echo(f"phash: 0x{upload.phash:016x}")
        click.echo(f"payload: 0x{upload.payload.hex()}")
        click.echo(f"extrinsic: 0x{result.outcome.ext_hash.hex()}")
        if result.outcome.block_hash is None:
            click.echo("registration: pending (submitted; not waiting for a block: --no-wait)")
            return
        number = client.header(result.outcome.block_hash).number
        click.echo(f"registration: {result.registration_id}")
        if result.kind == "registered":
            click.echo("result: new registration")
        elif result.kind == "version":
            click.echo(f"result: version {result.version_index} of registration {result.registration_id}")
        else:
            previous = encode_address(result.previous_owner) if result.previous_owner else "?"
            click.echo(
                f"result: RAW version {result.version_index}; ownership of registration "
                f"{result.registration_id} taken over from {previous}"
            )
        click.echo(f"block: #{number} 0x{result.outcome.block_hash.hex()}")
        if result.reward is not None:
            click.echo(f"reward: {format_img(result.reward)} IMG")
        elif result.not_rewarded is not None:
            click.echo(f"reward: none ({result.not_rewarded})")


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
@_url_option
def verify_command(file: Path, url: str) -> None:
    """Find who registered FILE: by its watermarks (exact) or its pHash (similar). Exit 1 if nobody."""
    data = _verify_bytes(file)
    with _client(url) as client:
        result = client.verify_image(data)
        click.echo(f"phash: 0x{result.phash:016x}")
        click.echo(f"watermark: {'0x' + result.watermark.hex() if result.watermark else 'none'}")
        if len(result.watermarks) > 1:
            marks = ", ".join("0x" + w.hex() for w in result.watermarks)
            click.echo(f"watermarks: {marks} (marked more than once: the earliest registration comes first)")
        best = result.best
        if best is None:
            click.echo("match: none")
            raise SystemExit(1)
        registration = best.registration
        click.echo(f"match: {best.kind}")
        click.echo(f"registration: {registration.id}")
        click.echo(f"owner: {encode_address(registration.owner)}")
        click.echo(f"block: #{registration.block} ({_when(registration.timestamp_ms)})")
        click.echo(f"distance: {best.distance} (version {best.version})")
        click.echo(f"title: {registration.title}")
        if registration.creator:
            click.echo(f"creator: {registration.creator}")
        click.echo(f"versions: {len(registration.versions)}")
        if best.offers:
            params = client.licensing_params()
            for offer in best.offers:
                click.echo(f"offer: {_offer_line(offer, params)}")
        for other in result.matches[1:]:
            click.echo(
                f"also: {other.kind} registration {other.registration.id} (distance {other.distance}), "
                f"owner {encode_address(other.owner)}, block #{other.registration.block}"
            )


image_group.add_command(register_command)
image_group.add_command(verify_command)


# ---------------------------------------------------------------------------------------------
# license
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


@click.group("license")
def license_group() -> None:
    """Offer, buy and list image licences (paid in IMG; the licence fee is burned)."""


@license_group.command("offer")
@click.argument("registration_id", type=click.IntRange(1))
@click.option("--price", required=True, help="Price in IMG; the owner receives all of it.")
@click.option(
    "--kind",
    type=click.Choice(["rf", "rm"], case_sensitive=False),
    default="rf",
    show_default=True,
    help="rf: royalty free (perpetual, non-exclusive); rm: rights managed (terms, expiry).",
)
@click.option(
    "--max-resolution",
    type=click.IntRange(0),
    default=0,
    help="RF: largest licensed size in pixels (0 = any).",
)
@click.option("--use", default="", help="RM: the licensed use, e.g. 'editorial, web'.")
@click.option("--territory", default="", help="RM: where, e.g. 'EU'.")
@click.option("--run-size", type=click.IntRange(0), default=0, help="RM: number of copies (0 = unlimited).")
@click.option("--duration", default=None, help="RM: how long each licence runs, e.g. 30d, 12h.")
@click.option("--exclusive", is_flag=True, help="RM: while it runs, nobody else can license the image.")
@_signer_options
def offer_command(
    registration_id: int,
    price: str,
    kind: str,
    max_resolution: int,
    use: str,
    territory: str,
    run_size: int,
    duration: str | None,
    exclusive: bool,
    sender: str,
    scheme: str,
    password_file: Path | None,
    tip: str,
    url: str,
) -> None:
    """Offer a licence of a registration you own; prints the offer id."""
    value = _amount(price, "--price")
    tip_value = _amount(tip, "--tip")
    from_ = _signer(sender, scheme, password_file)
    rm = kind.lower() == "rm"
    if not rm and (duration or exclusive or use or territory or run_size):
        raise click.UsageError("--use, --territory, --run-size, --duration and --exclusive need --kind rm")
    if rm and duration is None:
        raise click.UsageError("an RM offer needs --duration (e.g. 30d)")
    with _client(url) as client:
        try:
            if rm:
                assert duration is not None
                offer_id = offer_licence_rm(
                    client, from_, registration_id, value, use=use, territory=territory,
                    duration_ms=_duration_ms(duration), run_size=run_size, exclusive=exclusive, tip=tip_value,
                )  # fmt: skip
            else:
                offer_id = offer_licence_rf(
                    client, from_, registration_id, value, max_resolution, tip=tip_value
                )
        except CallFailed as exc:
            raise click.ClickException(f"offer refused: {exc}") from exc
        click.echo(f"offer: {offer_id}")
        click.echo(f"registration: {registration_id}")
        click.echo(f"price: {format_img(value)} IMG")


@license_group.command("buy")
@click.argument("offer_id", type=click.IntRange(1))
@_signer_options
def buy_command(
    offer_id: int, sender: str, scheme: str, password_file: Path | None, tip: str, url: str
) -> None:
    """Buy a licence from an offer: the price goes to the owner, the licence fee is burned."""
    tip_value = _amount(tip, "--tip")
    from_ = _signer(sender, scheme, password_file)
    with _client(url) as client:
        try:
            purchase = buy_licence(client, from_, offer_id, tip=tip_value)
        except CallFailed as exc:
            raise click.ClickException(f"purchase refused: {exc}") from exc
        click.echo(f"licence: {purchase.licence_id}")
        click.echo(f"registration: {purchase.registration_id}")
        click.echo(f"seller: {encode_address(purchase.seller)}")
        click.echo(f"price: {format_img(purchase.price)} IMG")
        click.echo(f"fee: {format_img(purchase.fee)} IMG (burned)")
        click.echo(f"expires: {'never' if purchase.expires_at_ms == 0 else _when(purchase.expires_at_ms)}")
        assert purchase.outcome.block_hash is not None
        click.echo(f"block: 0x{purchase.outcome.block_hash.hex()}")


@license_group.command("list")
@click.argument("registration_id", type=click.IntRange(1), required=False)
@click.option("--holder", default=None, help="List the licences this address bought instead.")
@_url_option
def list_command(registration_id: int | None, holder: str | None, url: str) -> None:
    """List the open offers of REGISTRATION_ID, or with --holder the licences an account holds."""
    if (registration_id is None) == (holder is None):
        raise click.UsageError("give either REGISTRATION_ID (its offers) or --holder ADDRESS (licences held)")
    with _client(url) as client:
        if registration_id is not None:
            if client.get_registration(registration_id) is None:
                raise click.ClickException(f"there is no registration {registration_id}")
            offers = client.licence_offers(registration_id)
            params = client.licensing_params()
            for offer in offers:
                click.echo(f"offer: {_offer_line(offer, params)}")
            if not offers:
                click.echo(f"no open offers for registration {registration_id}")
            return
        assert holder is not None
        account = _account_id(holder, "--holder")
        licences = client.licences_of(account)
        now_ms = _chain_now(client)
        for licence in licences:
            state = "active" if licence.is_active(now_ms) else "expired"
            until = "perpetual" if licence.expires_at_ms == 0 else f"until {_when(licence.expires_at_ms)}"
            click.echo(
                f"licence: #{licence.id} registration {licence.registration_id} "
                f"{licensing.KIND_NAMES.get(licence.kind, '?')} {format_img(licence.price)} IMG, {until}, {state}"
            )
        if not licences:
            click.echo(f"no licences held by {encode_address(account)}")


def _chain_now(client: RpcClient) -> int:
    from node.runtime import timestamp

    raw = client.storage(timestamp.KEY_NOW)
    return 0 if raw is None else int.from_bytes(raw, "big")
