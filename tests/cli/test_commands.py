"""Issue 11's other cases from the command line: messages instead of tracebacks, verify's "no
match" with the distance and the radius, flat copies that match nothing, the Substrate-style node
commands (`purge-chain`, `build-spec`), `key inspect` of an address, a busy RPC port."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
from PIL import Image

from node.chain_spec import genesis_block, load_chain_spec
from node.keys import dev_keypair
from node.service import dev_node
from tests.cli.helpers import as_json, failure, lines, run
from tests.imaging.conftest import natural_image
from tests.rpc.helpers import Server


async def test_files_that_are_not_images(tmp_path: Path, server: Server) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    for args in (["phash", str(text)], ["compare", str(text), str(text)],
                 ["watermark", str(text), str(tmp_path / "o.png"), "--key", "00" * 10, "--payload", "00" * 8]):  # fmt: skip
        message = failure(await run("image", *args))
        assert f"{text}: not an image this tool can decode" in message
    verify = failure(await run("image", "verify", str(text), "--url", server.url))
    assert "cannot decode the image" in verify and "BytesIO" not in verify


async def test_verify_says_how_far_and_refuses_flat_copies(server: Server, auto_author: None, tmp_path: Path) -> None:
    url = server.url
    photo = tmp_path / "bay.jpg"
    Image.fromarray(natural_image(81, 384, 512)).save(photo, quality=92)
    registered = await run("image", "register", str(photo), "--title", "Bay", "--from", "//Bob", "--url", url)
    assert registered.exit_code == 0, registered.output

    other = tmp_path / "other.png"
    Image.fromarray(natural_image(82, 384, 512)).save(other)
    result = await run("image", "verify", str(other), "--url", url)
    assert result.exit_code == 1
    match = lines(result.stdout)["match"]
    assert match.startswith("none (") and "the radius is 8" in match
    assert "nearest: registration 1 at distance" in match or "no registration within 16 bits" in match

    for name, rgb in (("white.png", np.full((300, 400, 3), 255, np.uint8)), ("black.png", np.zeros((1, 1, 3), np.uint8))):
        flat = tmp_path / name
        Image.fromarray(rgb).save(flat)
        shown = await run("image", "verify", str(flat), "--json", "--url", url)
        assert shown.exit_code == 1
        assert "flat at the pHash's scale" in json.loads(shown.stdout)["match"]


async def test_key_inspect_of_an_address() -> None:
    bob = dev_keypair("//Bob")
    result = await run("key", "inspect", bob.address)
    assert result.exit_code == 0, result.output
    assert lines(result.output)["Account id"].strip() == "0x" + bob.account_id.hex()
    bad = failure(await run("key", "inspect", bob.address[:-1] + ("x" if bob.address[-1] != "x" else "y")))
    assert "checksum mismatch" in bad


async def test_build_spec_and_purge_chain(tmp_path: Path) -> None:
    plain = await run("build-spec", "--chain", "dev")
    assert json.loads(plain.stdout) == load_chain_spec("dev").raw
    raw = as_json(await run("build-spec", "--chain", "dev", "--raw"))
    assert raw["genesisHash"] == "0x" + genesis_block(load_chain_spec("dev")).hash.hex()
    assert "0x" + b"copyright:params".hex() in raw["genesis"]["raw"]["top"]

    base = tmp_path / "base"
    dev_node(base, rpc_port=None).close()
    db = base / "chains" / "imagechain_dev" / "db"
    assert db.is_dir()
    asked = await run("purge-chain", "--base-path", str(base))
    assert asked.exit_code == 2 and "--chain is required" in asked.output
    purged = await run("purge-chain", "--dev", "--base-path", str(base), "-y")
    assert purged.exit_code == 0 and not db.exists(), purged.output
    again = failure(await run("purge-chain", "--dev", "--base-path", str(base), "-y"))
    assert "nothing to purge" in again


async def test_a_busy_rpc_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = await run("node", "--dev", "--base-path", str(tmp_path / "n"), "--rpc-port", str(port))
    message = failure(result)
    assert f"cannot listen on 127.0.0.1:{port} (--rpc-port): it is in use" in message
    both = await run("node", "--tmp", "--base-path", str(tmp_path), "--chain", "dev")
    assert both.exit_code == 2 and "--tmp and --base-path" in both.output
