#!/usr/bin/env bash
# Private RabbitMQ node (Debian rabbitmq-server 3.10) for the Nova harness (tests/harness/nova).
# Usage: rabbitmq.sh WORKDIR AMQP_PORT [up|down|status]
#   AMQP on 127.0.0.1:AMQP_PORT, epmd on AMQP_PORT+1, Erlang distribution on
#   AMQP_PORT+2. Own HOME (.erlang.cookie), mnesia, logs, config, pid under
#   WORKDIR/rabbitmq. User guest/guest (loopback only, RabbitMQ's default).
set -euo pipefail
W=$(realpath -m "$1"); PORT=$2; ACTION=${3:-up}
EPMD_PORT=$((PORT + 1)); DIST_PORT=$((PORT + 2))
R="$W/rabbitmq"
PIDFILE="$R/server.pid"     # pid of the rabbitmq-server shell script (SIGTERM = clean stop)
EPMD_PIDFILE="$R/epmd.pid"
log() { echo "[rabbitmq] $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  if alive "$PIDFILE"; then
    local pid; pid=$(cat "$PIDFILE")
    log "stopping rabbitmq-server (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  # epmd was started by our Erlang VM (-start_epmd) and daemonised itself:
  # its pid was recorded at start-up from the listening socket.
  if alive "$EPMD_PIDFILE"; then
    log "stopping epmd (pid $(cat "$EPMD_PIDFILE"))"
    kill -TERM "$(cat "$EPMD_PIDFILE")" 2>/dev/null || true
  fi
  rm -f "$EPMD_PIDFILE"
}

case "$ACTION" in
  down) stop; exit 0 ;;
  status) if alive "$PIDFILE" && port_open "$PORT"; then echo "rabbitmq running pid $(cat "$PIDFILE") port $PORT"; exit 0; fi
          echo "rabbitmq not running"; exit 1 ;;
  up) ;;
  *) echo "usage: $0 WORKDIR PORT [up|down|status]" >&2; exit 2 ;;
esac

if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
  log "apt-get install rabbitmq-server (Debian 12: 3.10.8)"
  apt-get update -qq
  # /usr/sbin/policy-rc.d (exit 101) keeps the system service from starting
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
fi

if alive "$PIDFILE" && port_open "$PORT"; then log "already running"; exit 0; fi
stop
for p in "$PORT" "$EPMD_PORT" "$DIST_PORT"; do
  if port_open "$p"; then log "port $p already in use"; exit 1; fi
done
mkdir -p "$R"/{mnesia,log,home}
cat > "$R/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$PORT
loopback_users.guest = true
log.file.level = info
# a 2-core test box: do not refuse publishers when the disk gets full-ish
disk_free_limit.absolute = 50MB
EOF
echo "[]." > "$R/enabled_plugins"
: > "$R/rabbitmq-env.conf"   # do not read /etc/rabbitmq/rabbitmq-env.conf

export HOME="$R/home" \
  RABBITMQ_CONF_ENV_FILE="$R/rabbitmq-env.conf" \
  RABBITMQ_NODENAME="fedgatenova@localhost" \
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$PORT" \
  RABBITMQ_DIST_PORT="$DIST_PORT" \
  ERL_EPMD_PORT="$EPMD_PORT" ERL_EPMD_ADDRESS=127.0.0.1 \
  RABBITMQ_CONFIG_FILE="$R/rabbitmq.conf" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$R/enabled_plugins" \
  RABBITMQ_MNESIA_BASE="$R/mnesia" RABBITMQ_LOG_BASE="$R/log" \
  RABBITMQ_PID_FILE="$R/beam.pid" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
setsid nohup /usr/lib/rabbitmq/bin/rabbitmq-server > "$R/log/console.log" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
for _ in $(seq 1 300); do
  port_open "$PORT" && break
  alive "$PIDFILE" || { log "rabbitmq-server died:"; tail -20 "$R/log/console.log" >&2; exit 1; }
  sleep 0.2
done
port_open "$PORT" || { log "no AMQP listener after 60 s"; tail -20 "$R/log/console.log" >&2; exit 1; }
epmd_line=$(ss -ltnpH "sport = :$EPMD_PORT")   # ...users:(("epmd",pid=NNN,fd=3))...
epmd_pid=${epmd_line#*pid=}; echo "${epmd_pid%%,*}" > "$EPMD_PIDFILE"
log "AMQP on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), epmd pid $(cat "$EPMD_PIDFILE"))"
