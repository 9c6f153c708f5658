#!/usr/bin/env bash
# pg.sh: a throwaway PostgreSQL cluster for tests (fsync off, trust auth, loopback only).
#
# Two ways to use it:
#
#   source scripts/pg.sh      # starts a cluster, exports COFFER_TEST_POSTGRES (and COFFER_PG_DATA),
#                             # and stops it and deletes its data when the sourcing shell exits
#   eval "$(scripts/pg.sh start)"   # same, but prints the exports; stop it with:
#   scripts/pg.sh stop              # (uses COFFER_PG_DATA, or the directory given as $2)
#
# Needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin, or PGBIN=...). As root, the
# cluster runs as the postgres user (initdb refuses root). Starting fails loudly, printing the
# server log. Environment: PGBIN, COFFER_PG_PORT (default: a free port), COFFER_PG_TMP (default /tmp).

# Everything lives in functions with their own error handling: this file may be sourced into an
# interactive shell or a `set -e` script, and must not change that shell's options.

_coffer_pg_log() { echo "pg.sh: $*" >&2; }

# _coffer_pg_run runs a PostgreSQL binary as the cluster's owner.
_coffer_pg_run() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

_coffer_pg_bin() {
	if [ -n "${PGBIN:-}" ]; then
		if [ ! -x "$PGBIN/initdb" ] || [ ! -x "$PGBIN/pg_ctl" ]; then
			_coffer_pg_log "PGBIN=$PGBIN has no initdb and pg_ctl"
			return 1
		fi
		echo "$PGBIN"
		return 0
	fi
	local bin
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	if [ -z "$bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		_coffer_pg_log "PostgreSQL not found; trying apt-get install postgresql"
		DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >/dev/null 2>&1 || true
		bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	fi
	if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
		_coffer_pg_log "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (set PGBIN)"
		return 1
	fi
	echo "$bin"
}

# _coffer_pg_port_free reports whether nothing listens on 127.0.0.1:$1.
_coffer_pg_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# _coffer_pg_start starts a cluster and sets COFFER_TEST_POSTGRES and COFFER_PG_DATA.
_coffer_pg_start() {
	local bin data port attempt
	bin=$(_coffer_pg_bin) || return 1
	data=$(mktemp -d "${COFFER_PG_TMP:-/tmp}/coffer-pg.XXXXXX") || return 1
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$data" || { rm -rf "$data"; return 1; }
	fi
	if ! _coffer_pg_run "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
		--no-sync >"$data.initdb.log" 2>&1; then
		_coffer_pg_log "initdb failed:"
		cat "$data.initdb.log" >&2
		rm -rf "$data" "$data.initdb.log"
		return 1
	fi
	rm -f "$data.initdb.log"
	for attempt in 1 2 3 4 5; do
		port=${COFFER_PG_PORT:-$((20000 + RANDOM % 30000))}
		if ! _coffer_pg_port_free "$port"; then
			[ -n "${COFFER_PG_PORT:-}" ] && { _coffer_pg_log "port $port is in use"; break; }
			continue
		fi
		if _coffer_pg_run "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 30 -o \
			"-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
			start >/dev/null 2>&1; then
			export COFFER_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			export COFFER_PG_DATA="$data"
			_coffer_pg_log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $data"
			return 0
		fi
		# Another process may have taken the port between the check and the start: try another.
		[ -n "${COFFER_PG_PORT:-}" ] && break
		_coffer_pg_run "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
	done
	_coffer_pg_log "PostgreSQL failed to start; server log:"
	cat "$data/server.log" >&2 2>/dev/null
	_coffer_pg_stop "$data"
	return 1
}

# _coffer_pg_stop stops the cluster in $1 (default COFFER_PG_DATA) and deletes its directory.
_coffer_pg_stop() {
	local data=${1:-${COFFER_PG_DATA:-}} bin
	if [ -z "$data" ]; then
		_coffer_pg_log "stop: no data directory (set COFFER_PG_DATA or pass it)"
		return 1
	fi
	case "$data" in
	*/coffer-pg.*) ;;
	*)
		_coffer_pg_log "stop: $data is not a pg.sh data directory; not touching it"
		return 1
		;;
	esac
	if bin=$(_coffer_pg_bin 2>/dev/null) && [ -f "$data/postmaster.pid" ]; then
		_coffer_pg_run "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$data"
}

# _coffer_pg_chain_trap adds a command to the commands the sourcing shell runs on EXIT. pg.sh and
# s3.sh share the list (_COFFER_EXIT_CMDS) and one EXIT trap, so sourcing both stops both.
_coffer_pg_chain_trap() {
	_COFFER_EXIT_CMDS+=("$1")
	trap '_coffer_run_exit_cmds' EXIT
}

# _coffer_run_exit_cmds runs the registered exit commands, newest first.
_coffer_run_exit_cmds() {
	local i
	for ((i = ${#_COFFER_EXIT_CMDS[@]} - 1; i >= 0; i--)); do
		eval "${_COFFER_EXIT_CMDS[i]}" || true
	done
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
	# Sourced.
	if _coffer_pg_start; then
		_coffer_pg_chain_trap "_coffer_pg_stop '$COFFER_PG_DATA'"
		# Make an interrupt or kill run the EXIT trap too, unless the shell handles them already.
		[ -n "$(trap -p INT)" ] || trap 'exit 130' INT
		[ -n "$(trap -p TERM)" ] || trap 'exit 143' TERM
	else
		return 1
	fi
else
	case "${1:-}" in
	start)
		_coffer_pg_start || exit 1
		printf 'export COFFER_TEST_POSTGRES=%q\nexport COFFER_PG_DATA=%q\n' "$COFFER_TEST_POSTGRES" "$COFFER_PG_DATA"
		;;
	stop)
		_coffer_pg_stop "${2:-}" || exit 1
		;;
	*)
		echo "usage: source scripts/pg.sh | scripts/pg.sh start | scripts/pg.sh stop [datadir]" >&2
		exit 2
		;;
	esac
fi
