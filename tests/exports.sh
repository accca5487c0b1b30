#!/bin/sh
# The library exports exactly the functions its installed headers declare:
# no internal symbol leaks, and nothing declared is missing.
set -eu
: "${top_builddir:=.}" "${top_srcdir:=.}"
lib="$top_builddir/.libs/libasyncio.so"
[ -f "$lib" ] || { echo "exports: $lib not built"; exit 99; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort -u > "$tmp/exported"
# Every ASYNCIO_EXTERN declaration: the identifier before the first '('.
cat "$top_srcdir"/include/asyncio.h "$top_srcdir"/include/asyncio/*.h \
    "$top_builddir"/include/asyncio/version.h 2>/dev/null |
  tr '\n' ' ' | sed 's/;/;\n/g' | grep 'ASYNCIO_EXTERN' |
  sed -n 's/.*[ *]\(asyncio_[a-z0-9_]*\)[ ]*(.*/\1/p' | sort -u > "$tmp/declared"

if ! diff -u "$tmp/declared" "$tmp/exported" > "$tmp/diff"; then
  echo "exports: exported symbols differ from the declared API (- declared only, + exported only):"
  cat "$tmp/diff"
  exit 1
fi
echo "exports: $(wc -l < "$tmp/exported") symbols, all declared"
