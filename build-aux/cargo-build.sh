#!/bin/sh
# Called by meson: cargo-build.sh SOURCE_ROOT PROFILE OUTDIR BIN...
set -eu
src="$1"; profile="$2"; outdir="$3"; shift 3
if [ "$profile" = "default" ]; then
  cargo build --manifest-path "$src/Cargo.toml" --workspace --release --bins
  dir="$CARGO_TARGET_DIR/release"
else
  cargo build --manifest-path "$src/Cargo.toml" --workspace --bins
  dir="$CARGO_TARGET_DIR/debug"
fi
for b in "$@"; do cp "$dir/$b" "$outdir/$b"; done
