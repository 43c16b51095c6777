"""JSON-RPC 2.0 for the node (PROTOCOL section 13): HTTP POST and WebSocket on one port (9944).

Where to look:

* `server`   -- `serve_rpc(node, host, port)`, run in the node's nursery; Starlette on hypercorn's
               trio worker; WebSocket sessions, their writer queue and subscriptions.
* `limits`   -- `RpcLimits`: every bound the server keeps, with the numbers behind each default
               (issue #10); `admission` (connections in total and per IP, `--rpc-rate-limit`,
               refusal logs), `budget` (answer bytes per request and over all connections),
               `origins` (`--rpc-cors`) enforce them.
* `jsonrpc`  -- the dispatcher (single, batch, notifications, standard error codes) and the typed
               method table.
* `methods`  -- every method, one module per family (`substrate`, `network`, `copyright`,
               `licensing`, `emission`; `rpc_methods` lists them, `rpc.discover` returns the
               OpenRPC document); `methods.TABLE` joins them.
* `params`, `render`, `state_at` -- what the families share: parameter types, JSON of the
               runtime's records, the block a query reads.
* `image_jobs`, `matches` -- `copyright_verifyImage`'s worker slots ("busy" when taken) and match
               ranking.
* `errors`   -- error codes and how pool rejections map onto Substrate's author errors.
* `encoding` -- 0x hex, header and block JSON, shared with the typed client `node.client`.

Choices made where the protocol is silent (Substrate's, unless noted):

* Not found is a `null` result (unknown block hash, unset storage key, height past the head);
  an unknown or pruned block as the `at` of a state query is error 4003.
* Pool rejections: 1001 bad format, 1010 "Invalid Transaction" for every validity rule, 1012
  banned, 1013 already imported, 1014 priority too low, 1016 pool full; `data` is the pool's
  reason string ("StaleNonce", "BadSignature", ...), the detail follows the message.
* Limits, as jsonrpsee numbers them: -32007 request too big (HTTP 413), -32008 response too big,
  -32009 server busy (connections: HTTP 429; answers held; image jobs, with `retryAfterMs`),
  -32010 batch too large, -32011 batch response too large, -32006 too many subscriptions;
  Substrate's -32999 for the rate limit. A WebSocket message over the limit closes the socket
  with 1009, a subscriber that stops reading with 1008. Our own: -32012 for a subscription
  method called over HTTP, -32013 for a browser origin `--rpc-cors` does not allow (HTTP 403).
* HTTP bodies must be `application/json` (415 otherwise); a body of notifications only gets 204.
* Subscriptions start with the current head (new and finalized heads), and a transaction watch
  ends after a final status (finalized, dropped, invalid, usurped).
"""
