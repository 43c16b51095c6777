"""``imagechain image ...``: the imaging tools (`node.imaging`) from the command line.

`node.commands.copyright` adds `register` and `verify`, which talk to a node, to this group.
"""

from __future__ import annotations

import sys

import click
import numpy as np

from node.imaging import io as imio
from node.imaging.chaos import KEY_BYTES
from node.imaging.ecc import PAYLOAD_BITS


def _hex_bytes(value: str, n: int, what: str) -> bytes:
    v = value.lower().removeprefix("0x")
    try:
        b = bytes.fromhex(v)
    except ValueError as e:
        raise click.BadParameter(f"{what} must be hex") from e
    if len(b) != n:
        raise click.BadParameter(f"{what} must be {n} bytes ({2 * n} hex digits), got {len(b)}")
    return b


def _key(value: str) -> bytes:
    return _hex_bytes(value, KEY_BYTES, "key")


def _load(path: str) -> np.ndarray:
    """The image's pixels, or a one-line error naming the file (not a decoder's traceback)."""
    try:
        return imio.load_rgb(path)
    except imio.UnsupportedRawError as e:
        raise click.ClickException(str(e)) from e
    except (OSError, ValueError, SyntaxError) as e:  # Pillow's ways of saying "cannot decode"
        raise click.ClickException(f"{path}: not an image this tool can decode ({e})") from None


@click.group("image")
def image_group() -> None:
    """pHash, watermark and near-duplicate tools."""


@image_group.command("phash")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def phash_cmd(file: str) -> None:
    """Print the 64-bit pHash (hex) of FILE."""
    from node.commands.common import first_run_notice
    from node.imaging.phash import phash

    pixels = _load(file)
    with first_run_notice():
        click.echo(f"{phash(pixels):016x}")


@image_group.command("watermark")
@click.argument("src", metavar="IN", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--key", required=True, help="80-bit key, 20 hex digits")
@click.option("--payload", required=True, help="64-bit payload, 16 hex digits")
@click.option("--strength", type=float, default=None, help="embedding strength k")
@click.option("--quality", type=int, default=95, show_default=True, help="JPEG/WebP quality of OUT")
def watermark_cmd(src: str, dst: str, key: str, payload: str, strength: float | None, quality: int) -> None:
    """Embed PAYLOAD in IN under KEY and write OUT; print the marked pixels' PSNR and SSIM."""
    from node.commands.common import first_run_notice
    from node.imaging.watermark import DEFAULT_STRENGTH, embed, image_psnr, image_ssim

    original = _load(src)
    try:
        with first_run_notice():
            out = embed(
                original,
                _key(key),
                _hex_bytes(payload, PAYLOAD_BITS // 8, "payload"),
                strength=DEFAULT_STRENGTH if strength is None else strength,
            )
    except ValueError as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    imio.save_rgb(dst, out, quality=quality)
    click.echo(f"psnr: {image_psnr(original, out):.2f} dB")
    click.echo(f"ssim: {image_ssim(original, out):.4f}")


@image_group.command("extract")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", required=True, help="80-bit key, 20 hex digits")
@click.option("--no-sync", is_flag=True, help="skip the template resynchronisation (crops, small rotations)")
def extract_cmd(file: str, key: str, no_sync: bool) -> None:
    """Print the payload (hex) carried by FILE under KEY; exit 1 if there is none."""
    from node.imaging.watermark import extract

    payload = extract(_load(file), _key(key), sync=not no_sync)
    if payload is None:
        click.echo("no watermark", err=True)
        sys.exit(1)
    click.echo(payload.hex())


@image_group.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
def compare_cmd(a: str, b: str) -> None:
    """Print both pHashes and their Hamming distance."""
    from node.commands.common import first_run_notice
    from node.imaging.phash import hamming, phash

    pa, pb = _load(a), _load(b)
    with first_run_notice():
        ha, hb = phash(pa), phash(pb)
    click.echo(f"{ha:016x} {hb:016x} distance {hamming(ha, hb)}")


@image_group.group("logo")
def logo_group() -> None:
    """The white paper's private logo mode."""


@logo_group.command("embed")
@click.argument("src", metavar="IN", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--key", required=True, help="80-bit key, 20 hex digits")
@click.option("--logo", "logo_path", type=click.Path(exists=True, dir_okay=False), help="logo image file")
@click.option("--text", default="TEST", show_default=True, help="render this text as the logo")
@click.option("--size", default="32x32", show_default=True, help="logo HxW (at most 1024 pixels)")
def logo_embed_cmd(src: str, dst: str, key: str, logo_path: str | None, text: str, size: str) -> None:
    """Hide a logo (a file, or rendered text) in IN and write OUT."""
    from PIL import Image

    from node.imaging.logo import embed_logo, text_logo

    h, w = (int(x) for x in size.lower().split("x"))
    if logo_path:
        logo = np.asarray(Image.open(logo_path).convert("L").resize((w, h), Image.LANCZOS), dtype=np.uint8)
    else:
        logo = text_logo(text, (h, w))
    try:
        marked = embed_logo(_load(src), _key(key), logo)
    except ValueError as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    imio.save_rgb(dst, marked)


@logo_group.command("extract")
@click.argument("src", metavar="IN", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", metavar="OUT", type=click.Path(dir_okay=False))
@click.option("--key", required=True, help="80-bit key, 20 hex digits")
@click.option("--size", default="32x32", show_default=True, help="logo HxW")
@click.option("--scale", default=8, show_default=True, help="enlarge the output by this factor")
def logo_extract_cmd(src: str, dst: str, key: str, size: str, scale: int) -> None:
    """Recover the logo hidden in IN and write it (enlarged) to OUT."""
    from PIL import Image

    from node.imaging.logo import extract_logo

    h, w = (int(x) for x in size.lower().split("x"))
    logo = extract_logo(_load(src), _key(key), (h, w))
    Image.fromarray(logo).resize((w * scale, h * scale), Image.NEAREST).save(dst)
