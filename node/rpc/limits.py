"""What one client, and all of them together, can make the RPC server hold or do.

Each bound answers a way the server was made to amplify (issue #10, finding 3): a small request
that builds a huge answer, a flood of subscriptions or connections, image jobs that queue without
end, a page on another site driving a local node (finding 7). Every refusal is a JSON-RPC error
with a code clients already know (jsonrpsee's or Substrate's) and a log line naming the client.

The numbers, measured on this project's 2-core machine (a `--dev` node idles at ~195 MB RSS;
`bench/bench_rpc.py` runs the floods):

* Answers: a block's JSON is ~2x its encoded size (hex): a 2.02 MB block answers 4.03 MB, the
  dev chain's largest (4 MiB, `max_block_bytes`) ~8.4 MiB, so jsonrpsee's 10 MiB holds it. A
  21 kB batch of 150 `chain_getBlock` of the 2.02 MB block asked for 605 MB; it now stops at
  10 MiB. Answers being built or waiting for their client (one that does not read keeps its
  answer in the server) are bounded together at 32 MiB (~2x that in memory while hypercorn
  sends them); the batch flood then costs the node ~75 MB.
* Calls at once: methods are synchronous work on the node's one loop; 20 clients building
  4 MB answers at once held the loop ~350 ms at a time (two at once: up to ~110 ms). One at a
  time keeps authoring within ~50 ms of its slot under all the floods together.
* Subscriptions: one costs ~3.4 kB idle and ~7.5-9 kB while its notifications wait for a client
  that does not read, and every new head is rendered and queued for each (~20 us). 100
  connections x 1,024 (Substrate's per-connection default, and no total cap) took ~1.1 GB and
  seconds of the loop at each block. 4,096 in all bound that near 30-50 MB and ~80 ms a block;
  256 per connection is far more than a wallet or explorer opens and makes 16 connections the
  fewest that fill the node.
* Connections: Substrate's 100 in all; 20 from one address is a few users behind one NAT (a
  browser opens at most 6 HTTP connections to a host) and keeps 5 addresses from taking all.
* Image jobs: `copyright_verifyImage` peaks at ~11 bytes a pixel (decoding, then the watermark
  search), plus ~90 MB once for loading the imaging code. The issue's flat 50 kB 39.5 MP PNG
  cost ~570 MB; 4096 x 3072 (12.6 MP, a 4:3 copy 4096 pixels long) costs ~135 MB, and one job
  at a time keeps a core for authoring.

With every flood at once the node peaked at ~495 MB RSS and sealed every block within 46 ms of
its slot (the goal: 600 MB, 100 ms).
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024

# Substrate's default `--rpc-cors` (without polkadot.js.org, which does not speak imagechain).
DEFAULT_CORS: tuple[str, ...] = (
    "http://localhost:*",
    "http://127.0.0.1:*",
    "https://localhost:*",
    "https://127.0.0.1:*",
)


@dataclass(frozen=True)
class RpcLimits:
    """The server's bounds; the command line sets them (`--rpc-*`, README "Security")."""

    # HTTP body or WebSocket message (`--rpc-max-request-size`, MiB). 10 MiB carries the largest
    # `copyright_verifyImage` upload (7 MiB, base64) and the largest extrinsic (4 MiB, hex).
    max_request_bytes: int = 10 * MIB
    # One answer, single or batch (`--rpc-max-response-size`, MiB): jsonrpsee's 10 MiB.
    max_response_bytes: int = 10 * MIB
    # Answers being built or not yet sent, over all connections: past it a request is answered
    # "busy" (the first 64 kB of each answer always pass; `node.rpc.budget`). The command line
    # makes it twice `--rpc-max-response-size`, at least 32 MiB.
    max_buffered_response_bytes: int = 32 * MIB
    # Requests in one batch (`--rpc-max-batch-request-len`).
    max_batch_len: int = 1000
    # Open connections: WebSocket sessions, and HTTP requests while they are read and answered
    # (`--rpc-max-connections`, Substrate's 100), and from one IP address
    # (`--rpc-max-connections-per-ip`; behind a reverse proxy every client is the proxy's address).
    max_connections: int = 100
    max_connections_per_ip: int = 20
    # Live subscriptions on one connection (`--rpc-max-subscriptions-per-connection`) and on the
    # node (`--rpc-max-subscriptions-total`).
    max_subscriptions_per_connection: int = 256
    max_subscriptions: int = 4096
    # Messages queued for a WebSocket client before the server stops reading its requests, and
    # before a subscriber that does not read is disconnected (1008)
    # (`--rpc-message-buffer-capacity-per-connection`, Substrate's 64).
    message_buffer_capacity: int = 64
    # How long a notification may wait for room in that queue before its subscriber is
    # disconnected: the queue full that long means the client has stopped reading (the kernel's
    # socket buffers, megabytes, are full before the queue starts to fill).
    slow_subscriber_timeout_s: float = 5.0
    # Calls a minute per connection (per IP address over HTTP), None for no limit
    # (`--rpc-rate-limit`, Substrate's semantics: wait, then -32999).
    rate_limit_per_minute: int | None = None
    # Calls running at once over all connections; the others wait their turn (no flag: more
    # gains nothing on the node's one loop, and delays authoring; see `Dispatcher`). Image jobs
    # wait for their worker thread outside it.
    calls_at_once: int = 1
    # Image jobs (`copyright_verifyImage`) at once; one more is answered "busy" (-32009), not
    # queued (`--rpc-max-image-jobs`).
    max_image_jobs: int = 1
    # Pixels of an image sent to `copyright_verifyImage`, checked from its header before
    # decoding (`--rpc-max-image-pixels`).
    max_image_pixels: int = 4096 * 3072
    # Origins allowed to call (`--rpc-cors`): patterns like "https://example.org" or
    # "http://localhost:*" (any port); None allows every origin. Requests without an Origin
    # header (not from a browser) are always served.
    cors: tuple[str, ...] | None = DEFAULT_CORS

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, (int, float)) and value <= 0:
                raise ValueError(f"RPC limit {name} must be positive, got {value}")
        if self.max_buffered_response_bytes < self.max_response_bytes:
            raise ValueError("max_buffered_response_bytes must hold at least one max_response_bytes answer")
