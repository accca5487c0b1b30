#!/bin/sh
# Every exported function is exercised by tests/test-badinput.c: it is the
# function called by at least one EXPECT_* case there (the first asyncio_*
# call inside the EXPECT_*( ... ) statement).  The export list is taken as
# tests/exports.sh takes it: the library's dynamic symbols, and the
# ASYNCIO_EXTERN declarations of the installed headers.
set -eu
: "${top_builddir:=.}" "${top_srcdir:=.}"
lib="$top_builddir/.libs/libasyncio.so"
src="$top_srcdir/tests/test-badinput.c"
[ -f "$lib" ] || { echo "badinput-coverage: $lib not built"; exit 99; }
[ -f "$src" ] || { echo "badinput-coverage: $src missing"; exit 99; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

{
  nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}'
  cat "$top_srcdir"/include/asyncio.h "$top_srcdir"/include/asyncio/*.h \
      "$top_builddir"/include/asyncio/version.h 2>/dev/null |
    tr '\n' ' ' | sed 's/;/;\n/g' | grep 'ASYNCIO_EXTERN' |
    sed -n 's/.*[ *]\(asyncio_[a-z0-9_]*\)[ ]*(.*/\1/p'
} | grep '^asyncio_' | sort -u > "$tmp/exported"

# The test's statements, without comments and preprocessor lines; of each
# statement holding an EXPECT_*( case, the first asyncio_* function called.
grep -v '^[ ]*#' "$src" | tr '\n' ' ' |
  awk '{
    s = $0; out = "";
    while ((i = index(s, "/*")) > 0) {
      out = out substr(s, 1, i - 1); s = substr(s, i + 2);
      j = index(s, "*/"); if (j == 0) { s = ""; break }
      s = substr(s, j + 2);
    }
    print out s;
  }' | tr ';' '\n' |
  awk 'match($0, /EXPECT_[A-Z_]+\(/) {
         rest = substr($0, RSTART + RLENGTH);
         if (match(rest, /asyncio_[a-z0-9_]+[ ]*\(/)) {
           name = substr(rest, RSTART, RLENGTH); sub(/[ ]*\($/, "", name); print name
         }
       }' | sort -u > "$tmp/tested"

missing=$(comm -23 "$tmp/exported" "$tmp/tested")
if [ -n "$missing" ]; then
  echo "badinput-coverage: exported functions with no EXPECT_* case in tests/test-badinput.c:"
  for f in $missing; do echo "  $f"; done
  exit 1
fi
echo "badinput-coverage: all $(wc -l < "$tmp/exported") exported functions have bad-input cases" \
  "($(grep -c 'EXPECT_' "$src") EXPECT_ lines)"
