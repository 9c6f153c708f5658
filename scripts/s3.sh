#!/usr/bin/env bash
# s3.sh: a throwaway S3 server for tests (versitygw with its posix backend, loopback only).
#
# Two ways to use it:
#
#   source scripts/s3.sh      # starts versitygw, exports COFFER_TEST_S3 (and COFFER_S3_ROOT, COFFER_S3_PID),
#                             # and stops it and deletes its root when the sourcing shell exits
#   eval "$(scripts/s3.sh start)"   # same, but prints the exports; stop it with:
#   scripts/s3.sh stop              # (uses COFFER_S3_ROOT and COFFER_S3_PID, or the root given as $2)
#
# versitygw is installed into $REPO/.bin on first use (go install, about 2.5 minutes; cached after
# that). COFFER_TEST_S3 looks like http://testkey:testsecret0123456789@127.0.0.1:PORT: the test
# credentials are fixed and only valid for this loopback server. Starting fails loudly, printing the
# server log. Environment: COFFER_S3_PORT (default: a free port), COFFER_S3_TMP (default /tmp),
# VERSITYGW (a versitygw binary to use instead of $REPO/.bin/versitygw).

# Everything lives in functions with their own error handling: this file may be sourced into an
# interactive shell or a `set -e` script, and must not change that shell's options.

_COFFER_S3_VERSION=v1.8.0
_COFFER_S3_ACCESS=testkey
_COFFER_S3_SECRET=testsecret0123456789

_coffer_s3_log() { echo "s3.sh: $*" >&2; }

_coffer_s3_repo() {
	(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

# _coffer_s3_bin prints the versitygw binary, installing it into $REPO/.bin if missing.
_coffer_s3_bin() {
	if [ -n "${VERSITYGW:-}" ]; then
		echo "$VERSITYGW"
		return 0
	fi
	local repo bin start
	repo=$(_coffer_s3_repo) || return 1
	bin="$repo/.bin/versitygw"
	if [ ! -x "$bin" ]; then
		_coffer_s3_log "installing versitygw $_COFFER_S3_VERSION into $repo/.bin (about 2.5 minutes, once)"
		start=$SECONDS
		if ! GOBIN="$repo/.bin" go install "github.com/versity/versitygw/cmd/versitygw@$_COFFER_S3_VERSION" >&2; then
			_coffer_s3_log "go install of versitygw failed"
			return 1
		fi
		_coffer_s3_log "installed versitygw in $((SECONDS - start)) s"
	fi
	echo "$bin"
}

# _coffer_s3_port_free reports whether nothing listens on 127.0.0.1:$1.
_coffer_s3_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# _coffer_s3_ready waits up to 15 s until the server on port $1 (process $2) answers HTTP.
_coffer_s3_ready() {
	local port=$1 pid=$2 i
	for i in $(seq 1 150); do
		kill -0 "$pid" 2>/dev/null || return 1
		# Any HTTP status (an unsigned request gets 403) means the S3 API is up.
		if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# _coffer_s3_start starts versitygw and sets COFFER_TEST_S3, COFFER_S3_ROOT and COFFER_S3_PID.
_coffer_s3_start() {
	local bin root port attempt pid t0
	bin=$(_coffer_s3_bin) || return 1
	root=$(mktemp -d "${COFFER_S3_TMP:-/tmp}/coffer-s3.XXXXXX") || return 1
	mkdir -p "$root/data" || return 1
	for attempt in 1 2 3 4 5; do
		port=${COFFER_S3_PORT:-$((20000 + RANDOM % 30000))}
		if ! _coffer_s3_port_free "$port"; then
			[ -n "${COFFER_S3_PORT:-}" ] && { _coffer_s3_log "port $port is in use"; break; }
			continue
		fi
		t0=$(date +%s%N)
		ROOT_ACCESS_KEY=$_COFFER_S3_ACCESS ROOT_SECRET_KEY=$_COFFER_S3_SECRET \
			"$bin" --port "127.0.0.1:$port" --quiet --keep-alive posix "$root/data" \
			>"$root/server.log" 2>&1 </dev/null &
		pid=$!
		if _coffer_s3_ready "$port" "$pid"; then
			export COFFER_TEST_S3="http://$_COFFER_S3_ACCESS:$_COFFER_S3_SECRET@127.0.0.1:$port"
			export COFFER_S3_ROOT="$root"
			export COFFER_S3_PID="$pid"
			echo "$pid" >"$root/pid"
			_coffer_s3_log "versitygw on 127.0.0.1:$port (pid $pid, root $root), up in $((($(date +%s%N) - t0) / 1000000)) ms"
			return 0
		fi
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		# Another process may have taken the port between the check and the start: try another.
		[ -n "${COFFER_S3_PORT:-}" ] && break
	done
	_coffer_s3_log "versitygw failed to start; server log:"
	cat "$root/server.log" >&2 2>/dev/null
	rm -rf "$root"
	return 1
}

# _coffer_s3_stop stops the server whose root is $1 (default COFFER_S3_ROOT) and deletes the root.
_coffer_s3_stop() {
	local root=${1:-${COFFER_S3_ROOT:-}} pid
	if [ -z "$root" ]; then
		_coffer_s3_log "stop: no root directory (set COFFER_S3_ROOT or pass it)"
		return 1
	fi
	case "$root" in
	*/coffer-s3.*) ;;
	*)
		_coffer_s3_log "stop: $root is not an s3.sh root; not touching it"
		return 1
		;;
	esac
	if [ -f "$root/pid" ]; then
		pid=$(cat "$root/pid")
		kill "$pid" 2>/dev/null || true
		# The server may not be our child (start mode): poll instead of wait.
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -rf "$root"
}

# _coffer_s3_chain_trap adds a command to the commands the sourcing shell runs on EXIT. pg.sh and
# s3.sh share the list (_COFFER_EXIT_CMDS) and one EXIT trap, so sourcing both stops both.
_coffer_s3_chain_trap() {
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
	if _coffer_s3_start; then
		_coffer_s3_chain_trap "_coffer_s3_stop '$COFFER_S3_ROOT'"
	else
		return 1
	fi
else
	case "${1:-}" in
	start)
		_coffer_s3_start || exit 1
		# The server must outlive this script.
		disown "$COFFER_S3_PID" 2>/dev/null
		printf 'export COFFER_TEST_S3=%q\nexport COFFER_S3_ROOT=%q\nexport COFFER_S3_PID=%q\n' \
			"$COFFER_TEST_S3" "$COFFER_S3_ROOT" "$COFFER_S3_PID"
		;;
	stop)
		_coffer_s3_stop "${2:-}" || exit 1
		;;
	*)
		echo "usage: source scripts/s3.sh | scripts/s3.sh start | scripts/s3.sh stop [root]" >&2
		exit 2
		;;
	esac
fi
