#!/usr/bin/env bash
# Installs baton for the action: a release for this runner's OS and
# architecture, its sha256 checked before anything is unpacked, or a build of
# the action's own source when BATON_VERSION is "source". Sets the step
# output `path` (the binary).
#
# BATON_VERSION      a release tag (v1.2.3) or "source"
# BATON_RELEASE_URL  where releases live; <url>/<tag>/<file> is fetched
# GITHUB_ACTION_PATH the action's checkout (scripts/checksums.txt, the source)
set -euo pipefail

fail() {
  echo "::error title=baton install::$*" >&2
  exit 1
}

version="${BATON_VERSION:-}"
action_path="${GITHUB_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}"
root="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/baton-install"

if [ "$version" = source ]; then
  command -v cargo >/dev/null || fail "version: source needs cargo on the runner (add a Rust toolchain step first)"
  cargo install --locked --quiet --path "$action_path" --root "$root"
  binary="$root/bin/baton"
else
  case "$version" in
    v[0-9]*.[0-9]*.[0-9]*) ;;
    *) fail "version must be a release tag such as v0.1.0, or source (got '$version')" ;;
  esac
  case "$(uname -s)/$(uname -m)" in
    Linux/x86_64) target=x86_64-unknown-linux-musl ;;
    Linux/aarch64 | Linux/arm64) target=aarch64-unknown-linux-musl ;;
    Darwin/x86_64) target=x86_64-apple-darwin ;;
    Darwin/arm64) target=aarch64-apple-darwin ;;
    *) fail "no baton release for $(uname -s) $(uname -m); set version: source" ;;
  esac
  base="${BATON_RELEASE_URL:?BATON_RELEASE_URL is not set}"
  base="${base%/}/$version"
  # HTTPS only; plain HTTP only to this machine (a mirror or a test server).
  case "$base" in
    https://*) protocols='=https' ;;
    http://127.0.0.1[:/]* | http://localhost[:/]*) protocols='=http' ;;
    *) fail "release-url must be https:// (got '$BATON_RELEASE_URL')" ;;
  esac
  archive="baton-$version-$target.tar.gz"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  fetch() {
    curl --fail --silent --show-error --location --proto "$protocols" --proto-redir "$protocols" \
      --retry 3 --retry-delay 1 --connect-timeout 10 --max-time 120 \
      --output "$work/$1" "$base/$1" || fail "cannot download $base/$1"
  }
  fetch "$archive"
  # The sum pinned in the action wins; else the release's own .sha256.
  expected=""
  if [ -f "$action_path/scripts/checksums.txt" ]; then
    expected="$(awk -v file="$archive" '$2 == file { print $1 }' "$action_path/scripts/checksums.txt")"
  fi
  if [ -z "$expected" ]; then
    fetch "$archive.sha256"
    expected="$(awk '{ print $1; exit }' "$work/$archive.sha256")"
  fi
  case "$expected" in
    [0-9a-f][0-9a-f][0-9a-f][0-9a-f]*) ;;
    *) fail "no sha256 for $archive" ;;
  esac
  if command -v sha256sum >/dev/null; then
    actual="$(sha256sum "$work/$archive" | awk '{ print $1 }')"
  else
    actual="$(shasum -a 256 "$work/$archive" | awk '{ print $1 }')"
  fi
  [ "$actual" = "$expected" ] || fail "$archive has sha256 $actual, expected $expected: not installed"
  mkdir -p "$root/bin"
  tar -xzf "$work/$archive" -C "$work" baton || fail "$archive holds no baton binary"
  install -m 0755 "$work/baton" "$root/bin/baton"
  binary="$root/bin/baton"
fi

"$binary" --version
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "path=$binary" >> "$GITHUB_OUTPUT"
fi
