# Sourced by scripts/test: a PostgreSQL server of the tests' own, on a loopback port, with its
# data under target/test-postgres. Each part checks first and acts only when needed: the server
# binaries are installed (apt-get) only when missing, a cluster is made (initdb) only when there
# is none, and a healthy server left running by an earlier run is used again. A server this
# script started is stopped when the sourcing shell exits, unless TASKFLOW_KEEP_POSTGRES=1.
# Exports TASKFLOW_TEST_POSTGRES, the URL the PostgreSQL tests connect to, and
# TASKFLOW_TEST_POSTGRES_CA, the certificate authority that signed the server's TLS certificate.
#
# initdb and postgres refuse to run as root: as root the cluster belongs to an unprivileged
# account (`postgres` when the packages made one, else `nobody`) and each command runs as it.

pg_root="$PWD/target/test-postgres"
pg_data="$pg_root/data"
pg_user=taskflow
pg_database=postgres

pg_bindir() {
    local dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$dir/initdb" ] && { echo "$dir"; return; }
    done
}

pg_bin="$(pg_bindir)"
if [ -z "$pg_bin" ]; then
    echo "test services: installing the PostgreSQL server (apt-get)" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql >&2
    pg_bin="$(pg_bindir)"
    [ -n "$pg_bin" ] || { echo "test services: no PostgreSQL server after apt-get" >&2; exit 1; }
fi

# Who owns and runs the cluster, and how a command runs as that account.
if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then pg_owner=postgres; else pg_owner=nobody; fi
    pg_as() { runuser -u "$pg_owner" -- "$@"; }
else
    pg_owner="$(id -un)"
    pg_as() { "$@"; }
fi

pg_port_file="$pg_root/port"
pg_healthy() {
    [ -f "$pg_port_file" ] && "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$pg_port_file")" \
        -U "$pg_user" -d "$pg_database" -t 2
}

pg_started_here=""
if ! pg_healthy; then
    mkdir -p "$pg_root"
    if [ ! -f "$pg_data/PG_VERSION" ]; then
        echo "test services: making a PostgreSQL cluster in $pg_data" >&2
        rm -rf "$pg_data"
        mkdir -p "$pg_data"
        [ "$(id -u)" -eq 0 ] && chown "$pg_owner" "$pg_root" "$pg_data"
        chmod 0700 "$pg_data"
        pg_as "$pg_bin/initdb" -D "$pg_data" -U "$pg_user" --auth=trust --encoding=UTF8 \
            --locale=C.UTF-8 >"$pg_root/initdb.log" 2>&1 || {
            cat "$pg_root/initdb.log" >&2
            exit 1
        }
    fi
    [ "$(id -u)" -eq 0 ] && chown "$pg_owner" "$pg_root"
    # A free loopback port, chosen now (the server keeps it until it stops).
    pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # A stale pid file of a server that died would stop pg_ctl; it is the dead server's.
    pg_as "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1 || rm -f "$pg_data/postmaster.pid"
    pg_as "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_root/server.log" -w -t 60 start \
        -o "-h 127.0.0.1 -p $pg_port -k $pg_root -c max_connections=200" >/dev/null || {
        tail -n 20 "$pg_root/server.log" >&2
        exit 1
    }
    echo "$pg_port" >"$pg_port_file"
    pg_started_here=1
    echo "test services: PostgreSQL started on 127.0.0.1:$pg_port" >&2
fi

# TLS: an authority of the tests' own and a server certificate it signed for 127.0.0.1 and
# localhost, made once under target/test-postgres/tls (openssl). The server takes TLS and plain
# connections alike (the client's sslmode decides). The settings go into the cluster's
# postgresql.conf once, and a server that runs without them (started before) reloads them.
pg_tls="$pg_root/tls"
if ! command -v openssl >/dev/null 2>&1; then
    echo "test services: installing openssl (apt-get)" >&2
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq openssl >&2
fi
pg_tls_changed=""
if [ ! -f "$pg_tls/ca.crt" ] || [ ! -f "$pg_tls/server.crt" ] || [ ! -f "$pg_tls/server.key" ]; then
    rm -rf "$pg_tls"
    mkdir -p "$pg_tls"
    pg_ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    {
        openssl req -x509 $pg_ec -days 3650 -subj "/CN=taskflow test authority" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$pg_tls/ca.key" -out "$pg_tls/ca.crt" &&
        openssl req $pg_ec -subj "/CN=localhost" \
            -keyout "$pg_tls/server.key" -out "$pg_tls/server.csr" &&
        printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
            >"$pg_tls/server.ext" &&
        openssl x509 -req -in "$pg_tls/server.csr" -CA "$pg_tls/ca.crt" -CAkey "$pg_tls/ca.key" \
            -CAcreateserial -days 3650 -extfile "$pg_tls/server.ext" -out "$pg_tls/server.crt"
    } >"$pg_root/tls.log" 2>&1 || {
        cat "$pg_root/tls.log" >&2
        exit 1
    }
    chmod 0600 "$pg_tls/server.key" "$pg_tls/ca.key"
    [ "$(id -u)" -eq 0 ] && chown -R "$pg_owner" "$pg_tls"
    pg_tls_changed=1
fi
if ! grep -q "^# taskflow test TLS" "$pg_data/postgresql.conf"; then
    printf '%s\n' "# taskflow test TLS (scripts/services/postgres.sh)" "ssl = on" \
        "ssl_cert_file = '$pg_tls/server.crt'" "ssl_key_file = '$pg_tls/server.key'" \
        >>"$pg_data/postgresql.conf"
    pg_tls_changed=1
fi
if [ -n "$pg_tls_changed" ]; then
    pg_as "$pg_bin/pg_ctl" -D "$pg_data" reload >/dev/null
    sleep 0.5
fi

if [ -n "$pg_started_here" ] && [ "${TASKFLOW_KEEP_POSTGRES:-}" != 1 ]; then
    pg_stop() { pg_as "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true; }
    trap pg_stop EXIT
fi

export TASKFLOW_TEST_POSTGRES="postgres://$pg_user@127.0.0.1:$(cat "$pg_port_file")/$pg_database"
# What the tests need to stop and start this server (the restart test).
export TASKFLOW_TEST_POSTGRES_CTL="$pg_bin/pg_ctl"
export TASKFLOW_TEST_POSTGRES_DATA="$pg_data"
export TASKFLOW_TEST_POSTGRES_OWNER="$pg_owner"
export TASKFLOW_TEST_POSTGRES_CA="$pg_tls/ca.crt"
