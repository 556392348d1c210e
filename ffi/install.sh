#!/usr/bin/env bash
# Builds lvsnap's C library (release) and installs it under PREFIX:
#   PREFIX/include/lvsnap.h
#   PREFIX/lib/liblvsnap.so.VERSION, liblvsnap.so.MAJOR, liblvsnap.so, liblvsnap.a
#   PREFIX/lib/pkgconfig/lvsnap.pc
# Usage: ffi/install.sh PREFIX   (e.g. /usr/local; then
#   cc prog.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs lvsnap))
# LVSNAP_PROFILE=debug installs a debug build instead.
set -euo pipefail
[ $# = 1 ] || { echo "usage: ffi/install.sh PREFIX" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
profile=${LVSNAP_PROFILE:-release}
cd "$here/.."
flags=()
[ "$profile" = release ] && flags=(--release)
cargo build -q -p lvsnap-ffi "${flags[@]}"
# The system libraries a static link needs, as rustc reports them.
private=$(cargo rustc -q -p lvsnap-ffi "${flags[@]}" --crate-type staticlib -- --print native-static-libs 2>&1 |
	sed -n 's/^.*native-static-libs: //p' | tail -n 1)
target=${CARGO_TARGET_DIR:-target}/$profile
version=$(sed -n 's/^version = "\(.*\)"/\1/p' ffi/Cargo.toml | head -n 1)
major=${version%%.*}
install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 ffi/include/lvsnap.h "$prefix/include/"
install -m 755 "$target/liblvsnap.so" "$prefix/lib/liblvsnap.so.$version"
ln -sf "liblvsnap.so.$version" "$prefix/lib/liblvsnap.so.$major"
ln -sf "liblvsnap.so.$major" "$prefix/lib/liblvsnap.so"
install -m 644 "$target/liblvsnap.a" "$prefix/lib/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" -e "s|@PRIVATE@|$private|" \
	ffi/lvsnap.pc.in >"$prefix/lib/pkgconfig/lvsnap.pc"
echo "lvsnap: installed liblvsnap $version under $prefix" >&2
