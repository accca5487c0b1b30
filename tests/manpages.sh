#!/bin/sh
# Every exported function has a man page (a .so link to its header's page,
# made by doc/gen-man.sh at build time), that page declares it, and every
# page formats without a warning.
set -eu
: "${top_builddir:=.}"
lib="$top_builddir/.libs/libasyncio.so"
man="$top_builddir/doc/man"
[ -f "$lib" ] || { echo "manpages: $lib not built"; exit 99; }
[ -f "$man/libasyncio.3" ] || { echo "manpages: $man not generated"; exit 99; }
fail=0

for sym in $(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort -u); do
  link="$man/$sym.3"
  if [ ! -f "$link" ]; then
    echo "manpages: no page for $sym"; fail=1; continue
  fi
  target=$(sed -n 's|^\.so man3/||p' "$link")
  if [ -z "$target" ] || [ ! -f "$man/$target" ]; then
    echo "manpages: $sym.3 does not lead to a page ($target)"; fail=1; continue
  fi
  # Declared in one of the page's code blocks (.EX ... .EE).
  awk -v s="$sym(" '/^\.EX/ {c = 1} /^\.EE/ {c = 0}
      c && (index($0, " " s) || index($0, "*" s)) {f = 1} END {exit !f}' "$man/$target" ||
    { echo "manpages: $target does not declare $sym"; fail=1; }
done

# The pages format cleanly (groff is optional: man-db brings it).
if command -v groff >/dev/null 2>&1; then
  for p in "$man"/asyncio-*.3 "$man/libasyncio.3"; do
    w=$(groff -man -Tutf8 -ww -z "$p" 2>&1) || true
    [ -z "$w" ] || { echo "manpages: $p: $w"; fail=1; }
  done
fi

[ $fail = 0 ] || exit 1
echo "manpages: $(ls "$man" | grep -c '^asyncio_') function pages, all exported functions covered"
