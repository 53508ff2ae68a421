#!/usr/bin/env bash
# A self-signed ECDSA P-256 certificate and key for development and tests.
#   scripts/gen-cert.sh [DIR] [NAME...]
# Writes DIR/cert.pem and DIR/key.pem (key mode 0600); DIR defaults to ./tls.
# The certificate names localhost, 127.0.0.1, ::1 and any extra NAMEs (hosts or IPs).
# Needs the openssl CLI (1.1.1 or 3.x). Never use these in production.
set -euo pipefail
dir="${1:-./tls}"
shift || true
mkdir -p "$dir"
san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in "$@"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san="$san,IP:$n"; else san="$san,DNS:$n"; fi
done
umask 077
openssl ecparam -name prime256v1 -genkey -noout -out "$dir/key.ec.pem" 2>/dev/null
# PKCS#8 ("BEGIN PRIVATE KEY"): what both node:tls and uWS (OpenSSL) read.
openssl pkcs8 -topk8 -nocrypt -in "$dir/key.ec.pem" -out "$dir/key.pem"
rm -f "$dir/key.ec.pem"
umask 022
openssl req -x509 -new -key "$dir/key.pem" -out "$dir/cert.pem" -days "${MOOR_CERT_DAYS:-825}" \
  -subj "/CN=moor-dev" -addext "subjectAltName=$san" -addext "basicConstraints=critical,CA:FALSE" \
  -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 600 "$dir/key.pem"
echo "wrote $dir/cert.pem and $dir/key.pem (ECDSA P-256, self-signed, SAN $san)" >&2
