#!/bin/sh
# The echo examples: each server (the asyncio protocol one and the plain
# libevent one) on a free loopback port, echo-client against it.
set -eu
: "${top_builddir:=.}"
ex="$top_builddir/examples"
fail() { echo "examples-echo: $*"; exit 1; }
log=$(mktemp); trap 'rm -f "$log"' EXIT

for server in echo-server echo-libevent; do
  : > "$log"
  timeout 10 "$ex/$server" --count 2 0 > "$log" &
  pid=$!
  i=0
  until grep -q '^listening on port ' "$log"; do
    i=$((i + 1)); [ $i -lt 100 ] || { kill $pid; fail "$server never started"; }
    sleep 0.05
  done
  port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$log")
  for msg in "hello echo" "second client"; do
    out=$(timeout 10 "$ex/echo-client" "$port" "$msg") || { kill $pid; fail "echo-client exited $? against $server"; }
    [ "$out" = "$msg" ] || { kill $pid; fail "$server echoed '$out', not '$msg'"; }
  done
  wait $pid || fail "$server exited $? after --count 2"
done
echo "examples-echo: echo-server and echo-libevent ok"
