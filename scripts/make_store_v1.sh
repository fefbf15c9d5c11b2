#!/usr/bin/env bash
# Regenerates tests/data/store_v1.db: a results store of schema version 1, written by dashkit as it
# was before issue 14 (commit f2acaeb), that test_store opens to check the migration to the current
# schema (old rows stay readable through the views; new columns are NULL).
# Usage: scripts/make_store_v1.sh   (needs git and the build dependencies; takes a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add --detach "$tmp/src" f2acaeb >/dev/null
make -C "$tmp/src" dashkit >/dev/null
cat > "$tmp/v1.json" <<'JSON'
{
  "name": "store-v1-fixture",
  "description": "A schema-1 store written by dashkit f2acaeb (before issue 14), for the migration test.",
  "models": ["tests/data/ref_llama_f32.gguf"],
  "tasks": [{"name": "passkey", "lengths": [200]}],
  "methods": [{"name": "dense"}, {"name": "dash", "rho": 0.5, "ls": 0.34}, {"name": "random", "rho": 0.667, "ls": 0.34, "seed": 1}],
  "samples": 2,
  "seed": 1234,
  "threads": 1
}
JSON
rm -f "$tmp/store_v1.db"
(cd "$tmp/src" && ./dashkit run "$tmp/v1.json" --db "$tmp/store_v1.db" >/dev/null)
sqlite3 "$tmp/store_v1.db" "PRAGMA journal_mode=DELETE; VACUUM;" >/dev/null
cp "$tmp/store_v1.db" "$root/tests/data/store_v1.db"
echo "wrote tests/data/store_v1.db"
