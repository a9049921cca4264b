#!/usr/bin/env bash
# Apache 2.4 + mod_ssl + mod_gridsite on a generated test PKI, for the
# interop test and the benchmark. mod_gridsite reads the hard-coded
# /etc/grid-security/{certificates,vomsdir}, so Apache runs in a private
# mount namespace where the test PKI is bind-mounted there; the host's
# /etc is never touched.
#   apache.sh start PKI_DIR RUN_DIR CGI_PORT STATIC_PORT   (prints the parent PID)
#   apache.sh stop RUN_DIR
# CGI_PORT serves /env (the CGI environment, NUL-separated, as gridsite
# and mod_ssl hand it over); STATIC_PORT serves /static.json from disk.
# Both: SSLVerifyClient optional, SSLCARevocationCheck chain, GridSiteEnvs on.
set -euo pipefail
cmd=${1:?start|stop}
missing() { echo "apache.sh: missing $1" >&2; exit 3; }
MODS=/usr/lib/apache2/modules
case $cmd in
stop)
  RUN=${2:?RUN_DIR}
  if [ -f "$RUN/launcher.pid" ]; then
    pid=$(cat "$RUN/launcher.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$RUN/launcher.pid"
  fi
  exit 0 ;;
start) ;;
*) echo "usage: apache.sh start|stop ..." >&2; exit 2 ;;
esac
PKI=$(cd "${2:?PKI_DIR}" && pwd); RUN=${3:?RUN_DIR}; CGI=${4:?CGI_PORT}; STATIC=${5:?STATIC_PORT}
command -v apache2 >/dev/null || missing apache2
command -v unshare >/dev/null || missing unshare
[ -f "$MODS/mod_gridsite.so" ] || missing "mod_gridsite (apt-get install gridsite)"
[ -d /etc/grid-security ] || missing /etc/grid-security
[ "$(id -u)" = 0 ] || { echo "apache.sh: needs root (mount namespace)" >&2; exit 3; }

mkdir -p "$RUN"/{logs,rt,cgi,htdocs,sessions}; chmod 755 "$RUN" "$RUN"/{cgi,htdocs}
chown www-data "$RUN/sessions" "$RUN/rt"
cat > "$RUN/cgi/env" <<'CGI'
#!/bin/sh
printf 'Content-Type: application/octet-stream\r\n\r\n'
env -0
CGI
chmod 755 "$RUN/cgi/env"
printf '{"version":{"id":"v3"}}\n' > "$RUN/htdocs/static.json"
G=/etc/grid-security
cat > "$RUN/apache.conf" <<CONF
ServerRoot "$RUN"
PidFile "$RUN/apache.pid"
DefaultRuntimeDir "$RUN/rt"
Mutex file:$RUN/rt default
ServerName localhost
User www-data
Group www-data
LoadModule mpm_event_module $MODS/mod_mpm_event.so
LoadModule authz_core_module $MODS/mod_authz_core.so
LoadModule alias_module $MODS/mod_alias.so
LoadModule mime_module $MODS/mod_mime.so
LoadModule cgid_module $MODS/mod_cgid.so
LoadModule socache_shmcb_module $MODS/mod_socache_shmcb.so
LoadModule ssl_module $MODS/mod_ssl.so
LoadModule gridsite_module $MODS/mod_gridsite.so
StartServers 2
ThreadsPerChild 25
MaxRequestWorkers 150
KeepAlive On
MaxKeepAliveRequests 100
TypesConfig /dev/null
ErrorLog "$RUN/logs/error.log"
LogLevel warn
ScriptSock "$RUN/rt/cgid.sock"
SSLSessionCache "shmcb:$RUN/rt/scache(512000)"
GridSiteSessionsDir "$RUN/sessions"
DocumentRoot "$RUN/htdocs"
<Directory />
  Require all denied
</Directory>
<Directory "$RUN/htdocs">
  Require all granted
</Directory>
<Directory "$RUN/cgi">
  Require all granted
</Directory>
Listen 127.0.0.1:$CGI
Listen 127.0.0.1:$STATIC
<Macro Tls>
  SSLEngine on
  SSLProtocol all -SSLv3
  SSLCertificateFile "$PKI/host.pem"
  SSLCertificateKeyFile "$PKI/host.key"
  SSLCACertificatePath $G/certificates
  SSLCARevocationPath $G/certificates
  SSLCARevocationCheck chain no_crl_for_cert_ok
  SSLVerifyClient optional
  SSLVerifyDepth 10
  SSLOptions +StdEnvVars +ExportCertData
</Macro>
<VirtualHost 127.0.0.1:$CGI>
  Use Tls
  ScriptAlias /env "$RUN/cgi/env"
  <Location /env>
    GridSiteEnvs on
  </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:$STATIC>
  Use Tls
  <Location />
    GridSiteEnvs on
  </Location>
</VirtualHost>
CONF
# mod_macro for the shared TLS block.
sed -i "s#^LoadModule mpm_event_module#LoadModule macro_module $MODS/mod_macro.so\nLoadModule mpm_event_module#" "$RUN/apache.conf"
prep="mount -t tmpfs -o mode=755 tmpfs $G && mkdir -p $G/certificates $G/vomsdir &&
  mount --bind '$PKI/certificates' $G/certificates && mount --bind '$PKI/vomsdir' $G/vomsdir"
unshare --mount --propagation private -- sh -c "$prep && exec apache2 -d '$RUN' -f '$RUN/apache.conf' -t" >/dev/null 2>"$RUN/logs/configtest.log" \
  || { cat "$RUN/logs/configtest.log" >&2; exit 1; }
setsid unshare --mount --propagation private -- sh -c "$prep && exec apache2 -d '$RUN' -f '$RUN/apache.conf' -DFOREGROUND" \
  >>"$RUN/logs/stdout.log" 2>&1 &
echo $! > "$RUN/launcher.pid"
for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/$CGI) 2>/dev/null; then echo "$(cat "$RUN/launcher.pid")"; exit 0; fi
  sleep 0.1
done
echo "apache.sh: Apache did not come up; see $RUN/logs/error.log" >&2
cat "$RUN/logs/error.log" >&2 || true
exit 1
