"""`python -m devnet up|status|down`: the devnet commands without the rest of the node CLI."""

from devnet.cli import devnet_group

devnet_group(prog_name="python -m devnet")
