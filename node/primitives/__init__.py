"""Types and pure checks shared by the client and the runtime (neither side owns them)."""
