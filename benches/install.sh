#!/usr/bin/env bash
# The action's install step, measured: the stripped release binary's size
# (goal: at most 15 MB) and the time to fetch and verify a release archive
# from a server on this machine with scripts/install.sh (goal: under 3 s on
# a runner; loopback shows the script's own share). Run: bash benches/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet
binary=target/release/baton
size=$(wc -c < "$binary")
printf 'binary: %s bytes (%.1f MB; goal 15 MB)\n' "$size" "$(echo "$size / 1048576" | bc -l)"

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
case "$(uname -m)" in aarch64 | arm64) arch=aarch64 ;; *) arch=x86_64 ;; esac
target="$arch-unknown-linux-musl"
mkdir -p "$work/releases/v0.0.0" "$work/action/scripts"
cp "$binary" "$work/baton"
archive="baton-v0.0.0-$target.tar.gz"
tar -czf "$work/releases/v0.0.0/$archive" -C "$work" baton
(cd "$work/releases/v0.0.0" && sha256sum "$archive" > "$archive.sha256")
printf 'archive: %s bytes\n' "$(wc -c < "$work/releases/v0.0.0/$archive")"
cp scripts/install.sh "$work/action/scripts/"
port=$((20000 + RANDOM % 20000))
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >/dev/null 2>&1 &
server=$!
sleep 1
start=$(date +%s.%N)
for _ in 1 2 3 4 5; do
  BATON_VERSION=v0.0.0 BATON_RELEASE_URL="http://127.0.0.1:$port/releases" \
    GITHUB_ACTION_PATH="$work/action" RUNNER_TEMP="$work/temp" GITHUB_OUTPUT=/dev/null \
    bash scripts/install.sh >/dev/null
done
end=$(date +%s.%N)
printf 'fetch + verify + unpack: %.3f s per install (mean of 5)\n' "$(echo "($end - $start) / 5" | bc -l)"
