#!/usr/bin/env bash
# A real OCI registry for tests/images_fetch.rs: Debian's docker-registry
# (CNCF distribution 2.8), on loopback, with its own configuration.
#
#   registry.sh up   DIR PORT htpasswd USER PASSWORD   Basic authentication (htpasswd, bcrypt)
#   registry.sh up   DIR PORT silly REALM SERVICE      Bearer challenge flow ("silly" auth:
#                                                      any Authorization passes; REALM issues tokens)
#   registry.sh down DIR
#
# DIR holds config.yml, registry.pid, registry.log; the blob store is
# DIR/../store, so two instances (one per auth kind) share their content.
set -euo pipefail
cmd=$1 dir=$2
case $cmd in
up)
  port=$3 kind=$4
  mkdir -p "$dir" "$dir/../store"
  store=$(cd "$dir/../store" && pwd)
  if [ "$kind" = htpasswd ]; then
    htpasswd -Bbc "$dir/htpasswd" "$5" "$6" >/dev/null 2>&1
    auth="  htpasswd:
    realm: fedgate-test
    path: $dir/htpasswd"
  else
    auth="  silly:
    realm: $5
    service: $6"
  fi
  cat > "$dir/config.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $store
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: fedgate-test-secret
auth:
$auth
YML
  docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/registry.pid"
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then exit 0; fi
    sleep 0.1
  done
  echo "docker-registry did not start on $port:" >&2
  cat "$dir/registry.log" >&2
  exit 1
  ;;
down)
  if [ -f "$dir/registry.pid" ]; then
    kill "$(cat "$dir/registry.pid")" 2>/dev/null || true
    rm -f "$dir/registry.pid"
  fi
  ;;
*) echo "usage: $0 up|down DIR ..." >&2; exit 2 ;;
esac
