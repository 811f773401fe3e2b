#!/usr/bin/env bash
# Token auth, TLS and mTLS against real cajald processes (tests/integration/security_test.py),
# with certificates made here by openssl: a CA, a server certificate for localhost/127.0.0.1,
# a client certificate, and a second CA with its own client certificate that must be refused.
set -euo pipefail
# shellcheck source=tests/tools/python_test_env.sh
source tests/tools/python_test_env.sh

pki=$work/pki
mkdir -p "$pki"
# new_ca NAME: a self-signed CA.
new_ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cajal test $1" \
    -keyout "$pki/$1.key" -out "$pki/$1.pem" 2>/dev/null
}
# new_cert NAME CA EXTENSIONS: a certificate for NAME signed by CA.
new_cert() {
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout "$pki/$1.key" -out "$pki/$1.csr" \
    2>/dev/null
  printf '%s\n' "$3" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.pem" -CAkey "$pki/$2.key" -CAcreateserial \
    -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.pem" 2>/dev/null
}
new_ca ca
new_ca other-ca
new_cert server ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
new_cert client ca "extendedKeyUsage=clientAuth"
new_cert rogue other-ca "extendedKeyUsage=clientAuth"
openssl verify -CAfile "$pki/ca.pem" "$pki/server.pem" "$pki/client.pem" >/dev/null

/usr/bin/python3 "$root/tests/integration/security_test.py" "$work/stubs" "$build" "$work"
