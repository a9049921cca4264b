#!/bin/sh
# Throwaway PKI for the AMS tests: a CA, the AMS server certificate
# (localhost, 127.0.0.1) and a host certificate that signs the messages
# and authenticates to authx509 (RSA; its key also in PKCS#1 form), and an
# EC P-256 one. The host certificates carry no extendedKeyUsage: plain
# `openssl smime -verify` checks the S/MIME signing purpose, which an EKU
# of only serverAuth,clientAuth fails. Usage: pki.sh DIR
set -eu
D="$1"; mkdir -p "$D"; cd "$D"
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
    -subj "/DC=org/DC=test/CN=Test AMS CA" \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign
leaf() { # name keyopts subject san
    q openssl req -new -newkey "$2" -nodes -keyout "$1.key" -out "$1.csr" -subj "$3"
    printf 'basicConstraints=CA:false\nkeyUsage=critical,digitalSignature,keyEncipherment\n%bsubjectAltName=%s\n' "$5" "$4" > "$1.ext"
    q openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem"
}
leaf server rsa:2048 "/CN=localhost" "DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth\n"
leaf host rsa:2048 "/DC=org/DC=test/CN=cloud.example.org" "DNS:cloud.example.org" ""
q openssl ecparam -name prime256v1 -genkey -noout -out hostec.key
q openssl req -new -key hostec.key -out hostec.csr -subj "/DC=org/DC=test/CN=ec.example.org"
printf "basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\n" > hostec.ext
q openssl x509 -req -in hostec.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile hostec.ext -out hostec.pem
# Traditional (PKCS#1) form of the host key, as many IGTF host keys are.
q openssl rsa -in host.key -traditional -out host-pkcs1.key
