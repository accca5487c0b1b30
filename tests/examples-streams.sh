#!/bin/sh
# The streams echo examples: echo-server-streams on a free loopback port;
# echo-client-streams and the protocol echo-client against it, and
# echo-client-streams against the protocol echo-server.
set -eu
: "${top_builddir:=.}"
ex="$top_builddir/examples"
fail() { echo "examples-streams: $*"; exit 1; }
log=$(mktemp); trap 'rm -f "$log"' EXIT

start() { # SERVER: starts it for 2 connections, sets pid and port
  : > "$log"
  timeout 10 "$ex/$1" --count 2 0 > "$log" &
  pid=$!
  i=0
  until grep -q '^listening on port ' "$log"; do
    i=$((i + 1)); [ $i -lt 100 ] || { kill $pid; fail "$1 never started"; }
    sleep 0.05
  done
  port=$(sed -n 's/^listening on port \([0-9]*\)$/\1/p' "$log")
}

check() { # SERVER CLIENT MESSAGE
  out=$(timeout 10 "$ex/$2" "$port" "$3") || { kill $pid; fail "$2 exited $? against $1"; }
  [ "$out" = "$3" ] || { kill $pid; fail "$1 echoed '$out' to $2, not '$3'"; }
}

start echo-server-streams
check echo-server-streams echo-client-streams "hello streams"
check echo-server-streams echo-client "from the protocol client"
wait $pid || fail "echo-server-streams exited $? after --count 2"

start echo-server
check echo-server echo-client-streams "streams client, protocol server"
check echo-server echo-client-streams "second"
wait $pid || fail "echo-server exited $? after --count 2"
echo "examples-streams: ok"
