#!/usr/bin/env bash
# Temporary Keystone for the bearer-token e2e test, until the CI helper's
# tests/harness/keystone/setup.sh lands on main (then use that instead).
#
#   start.sh WORKDIR HTTP_PORT [stop]     uwsgi protocol socket = HTTP_PORT+1
#
# Keystone under uWSGI (sqlite, fernet), [openid] remote_id_attribute =
# HTTP_OIDC_ISS, IdP egi.eu with remote_ids = $KEYSTONE_OIDC_ISSUERS (comma
# list), mapping: HTTP_OIDC_SUB -> user name, HTTP_OIDC_ISS any_one_of the
# issuers, OIDC-eduperson_entitlement regex
# ^urn:mace:egi.eu:group:fedcloud.egi.eu:role=vm_operator#aai.egi.eu$ -> group
# fedcloud.egi.eu (role member on project fedcloud.egi.eu).
# Prints `export` lines for FEDGATE_E2E_KEYSTONE_URL / _UWSGI on stdout.
set -euo pipefail
W=$1; PORT=$2; UPORT=$((PORT + 1))
VENV=${KEYSTONE_VENV:-$HOME/.cache/fedgate/keystone-venv}
mkdir -p "$W/etc" "$W/log"
if [ "${3:-}" = stop ]; then
  [ -f "$W/uwsgi.pid" ] && kill "$(cat "$W/uwsgi.pid")" 2>/dev/null || true
  exit 0
fi
ISSUERS=${KEYSTONE_OIDC_ISSUERS:?set KEYSTONE_OIDC_ISSUERS}
cat > "$W/etc/keystone.conf" <<CONF
[DEFAULT]
log_file = $W/log/keystone.log
[database]
connection = sqlite:///$W/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = $W/fernet
[fernet_receipts]
key_repository = $W/fernet
[credential]
key_repository = $W/cred
[auth]
methods = password,token,openid,mapped,application_credential
[openid]
remote_id_attribute = HTTP_OIDC_ISS
[cache]
enabled = false
CONF
cat > "$W/etc/uwsgi.ini" <<INI
[uwsgi]
module = keystone.wsgi.api:application
http-socket = 127.0.0.1:$PORT
uwsgi-socket = 127.0.0.1:$UPORT
buffer-size = 65535
master = true
processes = 2
threads = 2
lazy-apps = true
need-app = true
die-on-term = true
pidfile = $W/uwsgi.pid
daemonize = $W/log/uwsgi.log
INI
KM=("$VENV/bin/keystone-manage" --config-file "$W/etc/keystone.conf")
"${KM[@]}" db_sync >> "$W/log/manage.log" 2>&1
"$VENV/bin/python" -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")' "$W/keystone.db"
[ -f "$W/fernet/0" ] || { "${KM[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"; \
  "${KM[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"; } >> "$W/log/manage.log" 2>&1
URL=http://127.0.0.1:$PORT
"${KM[@]}" bootstrap --bootstrap-password admin-pw --bootstrap-public-url "$URL/v3" --bootstrap-region-id RegionOne >> "$W/log/manage.log" 2>&1
if [ -f "$W/uwsgi.pid" ] && kill "$(cat "$W/uwsgi.pid")" 2>/dev/null; then
  for _ in $(seq 100); do curl -s "$URL/v3" >/dev/null || break; sleep 0.2; done
fi
OS_KEYSTONE_CONFIG_DIR="$W/etc" "$VENV/bin/uwsgi" --ini "$W/etc/uwsgi.ini"
for _ in $(seq 300); do curl -sf "$URL/v3" >/dev/null && break; sleep 0.2; done
curl -sf "$URL/v3" >/dev/null || { tail -20 "$W/log/uwsgi.log" >&2; exit 1; }

"$VENV/bin/python" "$(dirname "$0")/federation.py" "$URL" "$ISSUERS"
echo "export FEDGATE_E2E_KEYSTONE_URL=$URL FEDGATE_E2E_KEYSTONE_UWSGI=127.0.0.1:$UPORT"
