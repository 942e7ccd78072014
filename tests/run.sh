#!/usr/bin/env bash
# The whole test suite: installs the peer programs the end-to-end tests use, then runs every test
# of the workspace. Without the peers (plain `cargo test`), those tests print a SKIP line instead.
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTCOL_PEERS=${AGENTCOL_PEERS:-$HOME/.cache/agentcol-peers}
bash tests/peers.sh "$AGENTCOL_PEERS"
cargo test --workspace --locked
