#!/bin/sh
# Called by `jobrun build` with JOBRUN_TARGET_ARCH = amd64 or arm64.
set -eu
case "$JOBRUN_TARGET_ARCH" in
  amd64) triple=x86_64-unknown-linux-gnu ;;
  arm64) triple=aarch64-unknown-linux-gnu ;;
  *) echo "unsupported architecture $JOBRUN_TARGET_ARCH" >&2; exit 1 ;;
esac
host=$(rustc -vV | sed -n 's/^host: //p')
if [ "$triple" = "$host" ]; then
  RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$triple"
else
  cross build --release --target "$triple"
fi
mkdir -p build
cp "target/$triple/release/{{name}}" build/job
