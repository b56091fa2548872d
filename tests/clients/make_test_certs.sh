#!/usr/bin/env bash
# Makes what the clients' TLS and auth tests need, in DIR: a throwaway CA (ca.crt), a server
# certificate for 127.0.0.1 and localhost (server.crt, server.key), a client certificate whose CN
# is the user client-one (client.crt, client.key), tokens (root.token, reader.token), and a
# shoald config file that turns auth on (auth.json): root is admin on every key, app-reader and
# client-one read app/.
#
#   tests/clients/make_test_certs.sh DIR
#   shoald --tls_cert_file=DIR/server.crt --tls_key_file=DIR/server.key \
#          --tls_client_ca_file=DIR/ca.crt --tls_client_auth=optional --config=DIR/auth.json
set -euo pipefail
dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
issue() {  # name, subject, extensions
  ec "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

ec ca.key
openssl req -x509 -new -key ca.key -subj "/O=Shoal tests/CN=Shoal test CA" -days 2 \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -out ca.crt 2>/dev/null
issue server "/O=Shoal tests/CN=shoald" \
  "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
issue client "/O=Shoal tests/CN=client-one" "extendedKeyUsage=clientAuth"

openssl rand -hex 24 > root.token
openssl rand -hex 24 > reader.token
hash() { printf %s "$(cat "$1")" | sha256sum | cut -d' ' -f1; }
cat > auth.json <<JSON
{"live": {"auth": {"enabled": true,
  "users": [
    {"name": "root", "tokenSha256": "$(hash root.token)", "roles": ["admin"]},
    {"name": "app-reader", "tokenSha256": "$(hash reader.token)", "roles": ["app-read"]},
    {"name": "client-one", "certificate": true, "roles": ["app-read"]}],
  "roles": [
    {"name": "admin", "permissions": [{"prefix": "", "access": "admin"}]},
    {"name": "app-read", "permissions": [{"prefix": "app/", "access": "read"}]}]}}}
JSON
