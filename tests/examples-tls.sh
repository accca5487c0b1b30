#!/bin/bash
# The TLS example: a CA and a certificate for localhost made with the
# openssl CLI, `openssl s_server -www` on a free loopback port, and
# tls-fetch getting "/" from it, verified against the CA; then the same
# fetch trusting the leaf alone (no chain to a CA) must fail.
set -eu
: "${top_builddir:=.}"
ex="$top_builddir/examples"
fail() { echo "examples-tls: $*"; exit 1; }
command -v openssl >/dev/null || fail "no openssl CLI"
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$dir"' EXIT

key="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
(
  cd "$dir"
  openssl req -x509 $key -keyout ca.key -out ca.pem -subj /CN=tls-fetch-ca
  openssl req $key -keyout server.key -out server.csr -subj /CN=localhost
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.cnf -out server.pem
) >/dev/null 2>&1 || fail "cannot make certificates"

# A free port: ask the kernel, then hand it to s_server.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null) ||
  port=$((20000 + $$ % 20000))
openssl s_server -accept "$port" -cert "$dir/server.pem" -key "$dir/server.key" -www -quiet \
  </dev/null >/dev/null 2>&1 &
pid=$!
i=0
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  i=$((i + 1)); [ $i -lt 100 ] || fail "s_server never listened on $port"
  kill -0 $pid 2>/dev/null || fail "s_server exited"
  sleep 0.05
done

out=$(timeout 10 "$ex/tls-fetch" 127.0.0.1 "$port" "$dir/ca.pem") || fail "tls-fetch exited $?"
case $out in
  "HTTP/1.0 200 ok"*) ;;
  *) fail "unexpected response: $(printf '%s' "$out" | head -c 200)" ;;
esac
# Trusting only the leaf itself, not its CA: the chain does not verify.
if timeout 10 "$ex/tls-fetch" 127.0.0.1 "$port" "$dir/server.pem" >/dev/null 2>&1; then
  fail "a certificate without a trusted chain was accepted"
fi
echo "examples-tls: tls-fetch ok"
