"""`RpcClient`: one typed method per RPC method of a node, results as the node's own types.

Results are decoded with the strict decoders and checked where the client can check them: a
header fetched by hash must hash to it, a block's extrinsics must match its header's extrinsics
root. Nothing here signs: building and submitting transactions is `node.client.transactions`.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from node.client.results import (
    AccountInfo,
    DryRun,
    ReadProof,
    TxStatus,
    VerifyResult,
    account_from_json,
    decoded,
    dry_run_from_json,
    emission_from_json,
    licence_from_json,
    offer_from_json,
    registration_from_json,
)
from node.client.transport import DEFAULT_TIMEOUT_S, DEFAULT_URL, RpcClientError, Transport
from node.rpc.encoding import block_from_json, from_hex, header_from_json, to_hex
from node.runtime import copyright, licensing, pod, system
from node.runtime.balances import KEY_TOTAL_ISSUANCE
from node.runtime.copyright import Registration
from node.runtime.emission import EmissionStatus
from node.runtime.licensing import Licence, LicensingParams, Offer
from node.runtime.system import Account, account_key
from node.types import Block, Header

__all__ = ["NotFound", "RpcClient"]


class NotFound(RpcClientError, LookupError):
    """The node does not have the block asked for."""


class RpcClient:
    """Calls a node's JSON-RPC at `url`; usable as a context manager to close its connections."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.transport = Transport(url, timeout)
        self._genesis_hash: bytes | None = None

    @property
    def url(self) -> str:
        return self.transport.url

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, method: str, *params: Any) -> Any:
        """Any method by name, its result as JSON: for methods without a typed wrapper."""
        return self.transport.call(method, *params)

    # -- system ---------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.call("system_health")

    def chain_name(self) -> str:
        return self.call("system_chain")

    def genesis_hash(self) -> bytes:
        """Block 0's hash (asked once per client: it never changes)."""
        if self._genesis_hash is None:
            found = self.block_hash(0)
            if found is None:
                raise RpcClientError(f"{self.url} has no block 0")
            self._genesis_hash = found
        return self._genesis_hash

    def chain_type(self) -> str:
        """The chain type in lower case: "development", "local", "live" or a custom name."""
        kind = self.call("system_chainType")
        if isinstance(kind, dict) and kind:
            return str(next(iter(kind.values()))).lower()  # {"Custom": name}
        return str(kind).lower()

    def properties(self) -> dict[str, Any]:
        return self.call("system_properties")

    def next_nonce(self, account_id: bytes) -> int:
        """The nonce for the account's next transaction, counting those already in the node's pool."""
        return int(self.call("system_accountNextIndex", to_hex(account_id)))

    # -- chain ----------------------------------------------------------------------------------

    def header(self, block_hash: bytes | None = None) -> Header:
        """The best header, or the header with this hash (checked to hash to it)."""
        result = self.call("chain_getHeader", *_at(block_hash))
        if result is None:
            raise NotFound(f"the node has no block {to_hex(block_hash or b'')}")
        header = decoded(header_from_json, result)
        if block_hash is not None and header.hash != block_hash:
            raise RpcClientError(f"the node answered a header that does not hash to {to_hex(block_hash)}")
        return header

    def block(self, block_hash: bytes | None = None) -> Block:
        """The best block, or the block with this hash (header hash and extrinsics root checked)."""
        result = self.call("chain_getBlock", *_at(block_hash))
        if result is None:
            raise NotFound(f"the node has no block {to_hex(block_hash or b'')}")
        block = decoded(block_from_json, result)
        if block_hash is not None and block.hash != block_hash:
            raise RpcClientError(f"the node answered a block that does not hash to {to_hex(block_hash)}")
        return block

    def block_hash(self, number: int) -> bytes | None:
        """The canonical block hash at a height, or None past the head."""
        result = self.call("chain_getBlockHash", number)
        return None if result is None else decoded(_hash, result)

    def finalized_head(self) -> bytes:
        return decoded(_hash, self.call("chain_getFinalizedHead"))

    def subscribe_new_heads(self, timeout: float | None = None) -> Iterator[Header]:
        """Each new best header, starting with the current one; `timeout` bounds each wait."""
        for result in self.transport.subscribe("chain_subscribeNewHeads", [], "chain_newHead", timeout):
            yield decoded(header_from_json, result)

    def subscribe_finalized_heads(self, timeout: float | None = None) -> Iterator[Header]:
        """Each newly finalized header, starting with the current one; `timeout` bounds each wait."""
        for result in self.transport.subscribe(
            "chain_subscribeFinalizedHeads", [], "chain_finalizedHead", timeout
        ):
            yield decoded(header_from_json, result)

    # -- state ----------------------------------------------------------------------------------

    def storage(self, key: bytes, at: bytes | None = None) -> bytes | None:
        """A raw storage value after block `at` (default: the best block); None if unset."""
        result = self.call("state_getStorage", to_hex(key), *_at(at))
        return None if result is None else decoded(from_hex, result)

    def read_proof(self, keys: list[bytes], at: bytes | None = None) -> ReadProof:
        result = self.call("state_getReadProof", [to_hex(key) for key in keys], *_at(at))
        return decoded(ReadProof.from_json, result)

    def account(self, account_id: bytes, at: bytes | None = None) -> Account:
        """Nonce and balances of an account (all zero for an account that does not exist)."""
        raw = self.storage(account_key(account_id), at)
        return Account() if raw is None else decoded(Account.decode, raw)

    def account_info(self, account_id: bytes, at: bytes | None = None) -> AccountInfo:
        """Balances as a wallet shows them: transferable, frozen and why (`balances_account`)."""
        return decoded(account_from_json, self.call("balances_account", to_hex(account_id), *_at(at)))

    def chain_params(self, at: bytes | None = None) -> system.ChainParams:
        """Fees, existential deposit, block limits (`system:params`)."""
        return system.read_params(lambda key: self.storage(key, at))

    def copyright_params(self, at: bytes | None = None) -> copyright.CopyrightParams:
        """pHash radius, tag fee, the structure a registration needs."""
        return copyright.read_params(lambda key: self.storage(key, at))

    def pod_params(self, at: bytes | None = None) -> pod.PodParams:
        """The PoD reward's screening thresholds (to explain a `NotRewarded`)."""
        return pod.read_params(lambda key: self.storage(key, at))

    def licensing_params(self, at: bytes | None = None) -> LicensingParams:
        """The chain's licence fee rule (to show a buyer the fee before buying)."""
        return licensing.read_params(lambda key: self.storage(key, at))

    def total_issuance(self, at: bytes | None = None) -> int:
        """All IMG in existence, in base units (`balances:total_issuance`)."""
        raw = self.storage(KEY_TOTAL_ISSUANCE, at)
        return 0 if raw is None else int.from_bytes(raw, "big")

    # -- author ---------------------------------------------------------------------------------

    def submit(self, encoded: bytes) -> bytes:
        """Hand a signed extrinsic to the node's pool; returns its hash (RpcError if refused)."""
        return decoded(_hash, self.call("author_submitExtrinsic", to_hex(encoded)))

    def query_fee(self, encoded: bytes, at: bytes | None = None) -> int:
        """The fee a signed extrinsic pays, without its tip, in base units (`payment_queryInfo`)."""
        result = self.call("payment_queryInfo", to_hex(encoded), *_at(at))
        return decoded(lambda r: int(str(r["partialFee"])), result)

    def dry_run(self, encoded: bytes, at: bytes | None = None) -> DryRun:
        """What a signed extrinsic would do on top of the best block (`system_dryRun`); nothing is sent."""
        return decoded(dry_run_from_json, self.call("system_dryRun", to_hex(encoded), *_at(at)))

    def pending(self) -> list[bytes]:
        return [decoded(from_hex, item) for item in self.call("author_pendingExtrinsics")]

    def watch_extrinsic(self, encoded: bytes, timeout: float | None = None) -> Iterator[TxStatus]:
        """Submit and yield each status until a final one; `timeout` bounds each wait."""
        for result in self.transport.subscribe(
            "author_submitAndWatchExtrinsic", [to_hex(encoded)], "author_extrinsicUpdate", timeout
        ):
            status = TxStatus.from_json(result)
            yield status
            if status.is_final:
                return

    # -- copyright, licensing, emission -----------------------------------------------------------

    def get_registration(self, registration_id: int, at: bytes | None = None) -> Registration | None:
        """A registration with all its versions; None if there is none with this id."""
        result = self.call("copyright_getRegistration", registration_id, *_at(at))
        return None if result is None else decoded(registration_from_json, result)

    def find_by_sha256(self, sha256: bytes, at: bytes | None = None) -> Registration | None:
        """The registration one of whose versions is exactly the file with this SHA-256."""
        result = self.call("copyright_findBySha256", to_hex(sha256), *_at(at))
        return None if result is None else decoded(registration_from_json, result)

    def search_similar(
        self, phash: int, radius: int | None = None, at: bytes | None = None
    ) -> list[tuple[int, int]]:
        """[(registration id, distance)] within `radius` (default: the chain's) of a pHash, nearest first."""
        result = self.call("copyright_searchSimilar", f"0x{phash:016x}", radius, *_at(at))
        return decoded(lambda items: [(int(i["id"]), int(i["distance"])) for i in items], result)

    def verify_image(self, image: bytes | str | os.PathLike[str], at: bytes | None = None) -> VerifyResult:
        """Who owns this image? `image` is a file's bytes or its path (module `copyright_verifyImage`)."""
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        result = self.call("copyright_verifyImage", base64.b64encode(data).decode("ascii"), *_at(at))
        return decoded(VerifyResult.from_json, result)

    def registrations_of(
        self, account_id: bytes, start: int = 0, limit: int = 100, at: bytes | None = None
    ) -> list[int]:
        """Ids of the registrations an account owns (one page; see `copyright_registrationsOf`)."""
        result = self.call("copyright_registrationsOf", to_hex(account_id), start, limit, *_at(at))
        return decoded(lambda items: [int(i) for i in items], result)

    def offer(self, offer_id: int, at: bytes | None = None) -> Offer | None:
        """An open licence offer by id (read from `licensing:offer:<id>`); None if there is none."""
        raw = self.storage(licensing.OFFERS.key(offer_id), at)
        return None if raw is None else decoded(licensing.OFFERS.codec.decode, raw)

    def licence_offers(self, registration_id: int, at: bytes | None = None) -> list[Offer]:
        """The open licence offers of a registration."""
        result = self.call("licensing_offers", registration_id, *_at(at))
        return decoded(lambda items: [offer_from_json(i) for i in items], result)

    def licences_of(
        self, account_id: bytes, start: int = 0, limit: int = 100, at: bytes | None = None
    ) -> list[Licence]:
        """Licences an account bought, in purchase order (one page)."""
        result = self.call("licensing_licencesOf", to_hex(account_id), start, limit, *_at(at))
        return decoded(lambda items: [licence_from_json(i) for i in items], result)

    def emission_status(self, at: bytes | None = None) -> EmissionStatus | None:
        """Mined supply, current reward rate and what remains; None on a chain without mining."""
        result = self.call("emission_status", *_at(at))
        return None if result is None else decoded(emission_from_json, result)


def _at(at: bytes | None) -> list[str]:
    """The optional trailing block-hash parameter: absent means the best block."""
    return [] if at is None else [to_hex(at)]


def _hash(value: Any) -> bytes:
    return from_hex(value, length=32)
