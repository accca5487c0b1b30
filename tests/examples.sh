#!/bin/sh
# The examples of the asyncio documentation run and say what they should.
set -eu
: "${top_builddir:=.}"
ex="$top_builddir/examples"
fail() { echo "examples: $*"; exit 1; }

out=$(timeout 10 "$ex/hello" 3 0.01) || fail "hello exited $?"
[ "$(printf '%s\n' "$out" | grep -c '^Hello World$')" = 3 ] || fail "hello printed: $out"

log=$(mktemp); trap 'rm -f "$log"' EXIT
timeout 10 "$ex/signals" > "$log" &
pid=$!
i=0
until grep -q '^pid ' "$log"; do
  i=$((i + 1)); [ $i -lt 100 ] || { kill $pid; fail "signals never started"; }
  sleep 0.05
done
kill -TERM "$(sed -n 's/^pid \([0-9]*\):.*/\1/p' "$log")"
wait $pid || fail "signals exited $?"
grep -q '^got signal SIGTERM: exit$' "$log" || fail "signals printed: $(cat "$log")"
echo "examples: hello and signals ok"
