"""The image gateway and uploads, on the RPC port (issue #12 item 6), mounted by `node.rpc.server`.

    PUT  /blob                        the body is a blob: stored, announced; {"root", "size"}
    GET  /blob/<root>                 its raw bytes (0x and 64 hex digits)
    GET  /img/<id>[?v=N][&w=W]        the published file of registration `id` (version N,
                                      default 0), byte for byte; with `w`, a copy W pixels wide
    GET  /img/<id>/rendition.png[?v=N] the 256x256 verification rendition (from the registering
                                      extrinsic: `Version.block` + `Version.ext_index`)

HEAD works wherever GET does. It follows the IPFS path gateway's conventions
(`shared/design/notes-storage-mining.md` section 3): a strong ETag from the content (the blob
root; `-w<W>` for a resized copy), `If-None-Match` answered 304, single byte ranges answered 206
with `Content-Range` (several ranges: the whole file, as the spec allows; past the end: 416),
`Cache-Control: public, max-age=29030400, immutable` for what cannot change: every `/blob/`, and
an image once the block that registered it is final (before that a reorg could give the id to
another file: `max-age=60`). The Content-Type of `/img/` is read from the file's bytes (Pillow's
identification, image formats only); `/blob/` is always `application/octet-stream`. Every answer
carries `X-Content-Type-Options: nosniff` and a `sandbox` Content-Security-Policy: the bytes come
from anyone, and must never run as a page of the node's origin.

A blob the node does not hold is fetched from the network (`BlobService.fetch`) when a
registration references it (`/blob/` of an unreferenced root is only served from the store, so
the gateway is no free proxy for arbitrary content); if no provider serves it in time, 504.

Errors are JSON (`{"error": {"status", "message"}}`), never a stack trace: an id or version that
does not parse, a width outside 16-4096, a root that is not 32 bytes of hex: 400; an unknown id or
version: 404; an upload over `--blob-max-upload`: 413 (from `Content-Length` before anything is
read, else as soon as the body passes it); a full store: 507. The RPC server's limits apply as
they do to JSON-RPC: browser origins (`--rpc-cors`, 403), connections in total and per address
(429), `--rpc-rate-limit` (429), image job slots and the pixel cap for resizing (503 busy, 422).
"""

from __future__ import annotations

import io
import logging
import re
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from node.codec import U64_MAX, DecodeError, blake2b_256
from node.rpc.errors import RpcError
from node.runtime import copyright
from node.state.trie import MissingNode
from node.storage.store import QuotaExceeded, StoreError
from node.types import Call, Extrinsic

if TYPE_CHECKING:
    from node.rpc.server import RpcNode, ServerState
    from node.storage.service import BlobService

__all__ = ["MAX_WIDTH", "MIN_WIDTH", "gateway_routes"]

log = logging.getLogger("node.rpc.gateway")

MIN_WIDTH, MAX_WIDTH = 16, 4096
IMMUTABLE = "public, max-age=29030400, immutable"
MUTABLE = "public, max-age=60"
FETCH_TIMEOUT_S = 30.0  # a blob the node does not hold: how long the gateway waits for the network
UPLOADS_AT_ONCE = 2  # uploads being received at once (each spooled to disk past 8 MiB); more: 503
SPOOL_BYTES = 8 * 1024 * 1024
WHOLE_BODY_BYTES = 4 * 1024 * 1024  # answers up to this size are sent at once, larger ones streamed
RESIZE_CACHE_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 256 * 1024
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox"}
_ROOT = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")
_NUMBER = re.compile(r"[0-9]{1,20}")


class GatewayError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"status": status, "message": message}}, status, headers={**SECURITY_HEADERS, **(headers or {})}
    )


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_root(text: str) -> bytes:
    match = _ROOT.fullmatch(text)
    if match is None:
        raise GatewayError(400, f"{text[:80]!r} is not a blob root (0x and 64 hex digits)")
    return bytes.fromhex(match.group(1))


def parse_number(text: str | None, what: str, low: int = 0, high: int = U64_MAX) -> int | None:
    if text is None:
        return None
    if not _NUMBER.fullmatch(text) or not low <= int(text) <= high:
        raise GatewayError(400, f"{what} must be a whole number from {low} to {high}, not {text[:40]!r}")
    return int(text)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range [start, end) asked for, or None for the whole file (no header, one we
    do not take: several ranges or a malformed one, which RFC 9110 says to ignore). Raises 416
    for a range that starts past the end."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0:
            raise GatewayError(416, "an empty suffix range", {"Content-Range": f"bytes */{size}"})
        return max(0, size - length), size
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range-spec
    end = size if not last else min(size, int(last) + 1)
    if start >= size or end <= start:
        raise GatewayError(416, f"range {spec.strip()} is outside a file of {size} bytes", {"Content-Range": f"bytes */{size}"})
    return start, end


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


# ---------------------------------------------------------------------------------------------
# Content
# ---------------------------------------------------------------------------------------------


def sniff_image_type(head: bytes) -> tuple[str, str] | None:
    """(MIME type, Pillow format) of an image file from its first bytes, or None if Pillow does
    not recognise it as an image (then the gateway says application/octet-stream)."""
    from PIL import Image, UnidentifiedImageError

    Image.init()
    try:
        with Image.open(io.BytesIO(head)) as image:
            fmt = image.format or ""
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    mime = Image.MIME.get(fmt)
    if mime is None or not mime.startswith("image/"):
        return None
    return mime, fmt


def resize_image(data: bytes, width: int, max_pixels: int) -> tuple[bytes, str]:
    """A copy `width` pixels wide (aspect kept), as JPEG (quality 88) from a JPEG, else PNG.
    Raises ValueError with a reason for files that cannot be decoded or are too large."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                raise ValueError(f"the image is {image.width}x{image.height}; at most {max_pixels:,} pixels are resized")
            jpeg = image.format == "JPEG"
            height = max(1, round(image.height * width / image.width))
            if jpeg:
                image.draft("RGB", (width, height))  # decode at a reduced scale when JPEG allows
            upright = ImageOps.exif_transpose(image)
            height = max(1, round(upright.height * width / upright.width))
            mode = "RGB" if jpeg else ("RGBA" if upright.mode in ("RGBA", "LA", "P") else "RGB")
            resized = upright.convert(mode).resize((width, height), Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the published file cannot be decoded as an image: {exc}") from None
    out = io.BytesIO()
    if jpeg:
        resized.save(out, format="JPEG", quality=88)
        return out.getvalue(), "image/jpeg"
    resized.save(out, format="PNG")
    return out.getvalue(), "image/png"


def _resize_blob(service: BlobService, root: bytes, width: int, max_pixels: int) -> tuple[bytes, str]:
    data = service.store.read(root)
    if data is None:
        raise ValueError(f"blob 0x{root.hex()} is no longer held here")
    return resize_image(data, width, max_pixels)


def rendition_png(rendition: bytes) -> bytes:
    from PIL import Image

    size = copyright.RENDITION_SIZE
    out = io.BytesIO()
    Image.frombytes("L", (size, size), rendition).save(out, format="PNG")
    return out.getvalue()


def find_rendition(extrinsic: bytes, sha256: bytes) -> bytes | None:
    """The rendition of the `copyright.register` call for file `sha256` in an extrinsic (the
    call itself, or nested in another call such as `sudo.sudo`)."""
    try:
        call = Extrinsic.decode(extrinsic).call
    except DecodeError:
        return None
    pending, depth = [call], 0
    while pending and depth < 8:
        depth += 1
        found: list[Call] = []
        for candidate in pending:
            args = candidate.args
            if candidate.name == "copyright.register" and len(args) == 12 and args[0] == sha256:
                rendition = args[8]
                return rendition if isinstance(rendition, bytes) and len(rendition) == copyright.RENDITION_BYTES else None
            for arg in args:
                if isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str):
                    try:
                        found.append(Call.from_wire(arg))
                    except DecodeError:
                        pass
        pending = found
    return None


class _Sent:
    """An answer that calls `done` once it has been sent, or has failed to be."""

    def __init__(self, response: Response, done: Callable[[], None]) -> None:
        self.response, self.done = response, done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.response(scope, receive, send)
        finally:
            self.done()


class _BytesLru:
    """Bytes values, least recently used dropped past `limit` bytes in all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._items: OrderedDict[Any, tuple[bytes, str]] = OrderedDict()

    def get(self, key: Any) -> tuple[bytes, str] | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: Any, data: bytes, media_type: str) -> None:
        if len(data) > self.limit // 4 or key in self._items:
            return
        self._items[key] = (data, media_type)
        self.held += len(data)
        while self.held > self.limit:
            _, (old, _) = self._items.popitem(last=False)
            self.held -= len(old)


# ---------------------------------------------------------------------------------------------
# The routes
# ---------------------------------------------------------------------------------------------


@dataclass
class _Served:
    """What a GET answers: a blob (or bytes made from one) with its headers."""

    etag: str
    cache: str
    media_type: str
    size: int
    read: Callable[[int, int], bytes | None]
    disposition: str | None = None


def gateway_routes(node: RpcNode, state: ServerState) -> list[Route]:
    """The gateway's routes for `build_app`, sharing the server's limits (`state`)."""
    resized = _BytesLru(RESIZE_CACHE_BYTES)
    renditions = _BytesLru(8 * 1024 * 1024)
    sniffed: dict[bytes, tuple[str, str] | None] = {}
    uploads = {"running": 0}

    def blobs() -> BlobService:
        service = getattr(node, "blobs", None)
        if service is None:
            raise GatewayError(503, "this node runs without an image store")
        return service

    def admitted(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """The RPC server's gate around a gateway handler: origin, connections, rate; errors as JSON."""

        async def endpoint(request: Request) -> Response:
            from node.rpc.server import _client

            ip, client = _client(request)
            origin = request.headers.get("origin")
            if not state.origins.allows(origin):
                state.limits_log.refused("origin", client, f"{origin!r} is not allowed by --rpc-cors")
                return _error(403, f"{origin} is not allowed (--rpc-cors)")
            reason = state.gate.refusal(ip)
            if reason is not None:
                state.limits_log.refused("connection", client, reason)
                return _error(429, reason, {"Retry-After": "1"})
            state.gate.enter(ip)  # left once the answer is sent (a large blob streams a while)
            try:
                if state.http_rates is not None:
                    await state.http_rates.of(ip).admit()
                response = await handler(request)
            except GatewayError as exc:
                response = _error(exc.status, exc.message, exc.headers)
            except RpcError as exc:  # the rate limit
                state.limits_log.refused("gateway (rate limit)", client, str(exc.data))
                response = _error(429, str(exc.data or exc.message), {"Retry-After": "1"})
            except ClientDisconnect:
                response = Response(status_code=400)
            except BaseException:
                state.gate.leave(ip)
                raise
            return _Sent(response, lambda: state.gate.leave(ip))  # type: ignore[return-value]

        return endpoint

    async def held(root: bytes, referenced: bool) -> BlobService:
        service = blobs()
        if service.store.has(root):
            return service
        if not referenced:
            raise GatewayError(404, f"blob 0x{root.hex()} is not held here (only blobs a registration references are fetched from the network)")
        if service.network is None:
            raise GatewayError(404, f"blob 0x{root.hex()} is not held here and this node has no network")
        if not await service.fetch(root, FETCH_TIMEOUT_S):
            raise GatewayError(504, f"blob 0x{root.hex()} is not held here and no provider served it in {FETCH_TIMEOUT_S:.0f} s")
        return service

    def answer(request: Request, served: _Served) -> Response:
        headers = {**SECURITY_HEADERS, "ETag": served.etag, "Cache-Control": served.cache, "Accept-Ranges": "bytes"}
        if served.disposition is not None:
            headers["Content-Disposition"] = served.disposition
        if _etag_matches(request.headers.get("if-none-match"), served.etag):
            return Response(status_code=304, headers=headers)
        if_range = request.headers.get("if-range")
        span = None if if_range is not None and if_range.strip() != served.etag else parse_range(
            request.headers.get("range"), served.size
        )
        start, end = span if span is not None else (0, served.size)
        status = 206 if span is not None else 200
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{served.size}"
        headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=served.media_type)
        if end - start <= WHOLE_BODY_BYTES:
            body = served.read(start, end)
            if body is None:
                raise GatewayError(404, "the blob was removed while it was read")
            return Response(body, status, headers=headers, media_type=served.media_type)
        return StreamingResponse(_chunks(served.read, start, end), status, headers=headers, media_type=served.media_type)

    def blob_served(service: BlobService, root: bytes, etag: str, cache: str, media_type: str, disposition: str | None) -> _Served:
        info = service.store.info(root)
        if info is None or not info.complete:
            raise GatewayError(404, f"blob 0x{root.hex()} is not held here")
        return _Served(etag, cache, media_type, info.size, lambda a, b: service.store.read(root, a, b), disposition)

    # -- /blob ----------------------------------------------------------------------------------

    async def get_blob(request: Request) -> Response:
        root = parse_root(request.path_params["root"])
        service = blobs()
        referenced = service.store.has(root) or service.referenced(root) is not None
        service = await held(root, referenced)
        served = blob_served(service, root, f'"{root.hex()}"', IMMUTABLE, "application/octet-stream", None)
        return answer(request, served)

    async def put_blob(request: Request) -> Response:
        service = blobs()
        limit = service.config.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise GatewayError(413, f"a blob upload is at most {limit:,} bytes (--blob-max-upload)")
        if uploads["running"] >= UPLOADS_AT_ONCE:
            raise GatewayError(503, f"{UPLOADS_AT_ONCE} uploads are being received; try again", {"Retry-After": "2"})
        uploads["running"] += 1
        try:
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
                size = 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise GatewayError(413, f"a blob upload is at most {limit:,} bytes (--blob-max-upload)")
                    spool.write(chunk)
                if size == 0:
                    raise GatewayError(400, "an empty body: the blob is the request body")
                try:
                    root, created = await service.upload(spool, size)  # type: ignore[arg-type]
                except QuotaExceeded as exc:
                    log.warning("upload of %d bytes refused: %s", size, exc)
                    raise GatewayError(507, f"{exc} (--blob-quota)") from None
                except StoreError as exc:
                    raise GatewayError(400, str(exc)) from None
        finally:
            uploads["running"] -= 1
        return JSONResponse(
            {"root": f"0x{root.hex()}", "size": size},
            201 if created else 200,
            headers={"Location": f"/blob/0x{root.hex()}"},
        )

    # -- /img -----------------------------------------------------------------------------------

    def version_of(request: Request) -> tuple[copyright.Registration, int, copyright.Version, bool]:
        registration_id = parse_number(request.path_params["rid"], "a registration id", copyright.FIRST_ID)
        number = parse_number(request.query_params.get("v"), "v (a version number)", 0, copyright.MAX_VERSIONS - 1)
        assert registration_id is not None
        chain = node.chain
        try:
            registration = copyright.get_registration(chain.best_state(), registration_id)
        except MissingNode:
            registration = None
        if registration is None:
            raise GatewayError(404, f"no registration {registration_id}")
        index = number or 0
        if index >= len(registration.versions):
            raise GatewayError(404, f"registration {registration_id} has {len(registration.versions)} version(s); no version {index}")
        version = registration.versions[index]
        final = version.block <= chain.finalized_header().number
        return registration, index, version, final

    async def get_image(request: Request) -> Response:
        width = parse_number(request.query_params.get("w"), "w (a width in pixels)", MIN_WIDTH, MAX_WIDTH)
        registration, index, version, final = version_of(request)
        published = next((b for b in version.blobs if b.kind == copyright.BLOB_PUBLISHED), None)
        if published is None:
            raise GatewayError(404, f"version {index} of registration {registration.id} stores no published file")
        root = published.root
        service = await held(root, True)
        cache = IMMUTABLE if final else MUTABLE
        kind = sniffed.get(root)
        if root not in sniffed:
            head = service.store.read(root, 0, SNIFF_BYTES) or b""
            kind = sniffed[root] = sniff_image_type(head)
            if len(sniffed) > 4096:
                sniffed.clear()
        media_type, fmt = kind if kind is not None else ("application/octet-stream", "bin")
        extension = {"JPEG": "jpg", "TIFF": "tif", "JPEG2000": "jp2"}.get(fmt, fmt.lower())
        name = f"{registration.id}-v{index}"
        if width is None or width >= version.width:
            served = blob_served(service, root, f'"{root.hex()}"', cache, media_type, f'inline; filename="{name}.{extension}"')
            return answer(request, served)
        key = (root, width)
        made = resized.get(key)
        if made is None:
            jobs = state.image_jobs
            try:  # the file is read in the job's thread: only a job with a slot holds one in memory
                made = await jobs.run(_resize_blob, service, root, width, jobs.max_pixels)
            except ValueError as exc:
                raise GatewayError(422, str(exc)) from None
            except RpcError as exc:  # every image job slot is taken
                retry = exc.data.get("retryAfterMs", 1000) if isinstance(exc.data, dict) else 1000
                raise GatewayError(503, "the node's image job slots are busy (--rpc-max-image-jobs)",
                                   {"Retry-After": str(max(1, -(-retry // 1000)))}) from None
            resized.put(key, *made)
        body, resized_type = made
        ext = "jpg" if resized_type == "image/jpeg" else "png"
        served = _Served(f'"{root.hex()}-w{width}"', cache, resized_type, len(body), lambda a, b: body[a:b],
                         f'inline; filename="{name}-w{width}.{ext}"')
        return answer(request, served)

    async def get_rendition(request: Request) -> Response:
        registration, index, version, final = version_of(request)
        key = (version.block, version.ext_index, version.sha256)
        made = renditions.get(key)
        if made is None:
            chain = node.chain
            block_hash = chain.hash_at(version.block)
            body = chain.db.body(block_hash) if block_hash is not None else None
            rendition = None
            if body is not None and version.ext_index < len(body):
                rendition = find_rendition(body[version.ext_index], version.sha256)
            if rendition is None:
                raise GatewayError(404, f"the rendition of registration {registration.id} version {index} is not in block #{version.block} here")
            made = (rendition_png(rendition), "image/png")
            renditions.put(key, *made)
        png, _ = made
        etag = f'"r-{blake2b_256(png)[:16].hex()}"'
        served = _Served(etag, IMMUTABLE if final else MUTABLE, "image/png", len(png), lambda a, b: png[a:b],
                         f'inline; filename="{registration.id}-v{index}-rendition.png"')
        return answer(request, served)

    return [
        Route("/blob", admitted(put_blob), methods=["PUT"]),
        Route("/blob/{root}", admitted(get_blob), methods=["GET", "HEAD"]),
        Route("/img/{rid}", admitted(get_image), methods=["GET", "HEAD"]),
        Route("/img/{rid}/rendition.png", admitted(get_rendition), methods=["GET", "HEAD"]),
    ]


async def _chunks(read: Callable[[int, int], bytes | None], start: int, end: int) -> AsyncIterator[bytes]:
    """The bytes [start, end) a segment at a time (each read is its own LMDB transaction)."""
    from node.primitives.merkle import SEGMENT_BYTES

    position = start
    while position < end:
        stop = min(end, (position // SEGMENT_BYTES + 1) * SEGMENT_BYTES)
        chunk = read(position, stop)
        if chunk is None:
            return  # deleted meanwhile: the client sees a short body
        yield chunk
        position = stop
