#!/bin/sh
# Entrypoint of the proxy image for platforms without Compose secrets (Railway, and the single-container image):
# sets up caddy/Caddyfile's environment, then execs Caddy. Compose runs the plain caddy image and does not need it.
#
#   docker-entrypoint.sh                the default: caddy run with /etc/caddy/Caddyfile (or $CADDYFILE)
#   docker-entrypoint.sh COMMAND...     any other command, with the same environment
#
# Users, first found wins:
#   CADDY_USERS_FILE, or the Compose secret $CADDY_SECRETS_DIR/proxy_users_caddy (/run/secrets): lines
#     "<user> <bcrypt hash>" as `npm run bootstrap` writes them
#   AUTH_USERNAME + AUTH_PASSWORD: one user, the password hashed here at start (`caddy hash-password` reads it from
#     stdin; printf is a shell builtin), so it is never an argument of any process and never logged. The hash goes to
#     a new 0600 file in a 0700 directory of the user Caddy runs as, and AUTH_PASSWORD is removed from Caddy's
#     environment.
# Listening: CADDY_SITE_ADDRESS as given, else ":$PORT" when the platform sets PORT, else the Caddyfile's ":80".
# An address without a host name serves plain HTTP with no certificate: right where the platform terminates TLS.
# MLFLOW_UPSTREAM (host:port of MLflow) and the other Caddyfile variables pass through unchanged.
set -eu

CADDY_SECRETS_DIR="${CADDY_SECRETS_DIR:-/run/secrets}"

log() { printf 'proxy-entrypoint: %s\n' "$*" >&2; }
die() {
	printf 'proxy-entrypoint: error: %s\n' "$*" >&2
	exit 1
}

# Shorter passwords are refused: the proxy is on the public internet (generate one with `openssl rand -base64 24`,
# or Railway's ${{secret(32)}}).
MIN_PASSWORD_LENGTH=12

users_from_file() {
	[ -f "$CADDY_USERS_FILE" ] || die "CADDY_USERS_FILE: $CADDY_USERS_FILE does not exist: run \`npm run bootstrap\`, or set AUTH_USERNAME and AUTH_PASSWORD instead"
	[ -r "$CADDY_USERS_FILE" ] || die "users file $CADDY_USERS_FILE is not readable by uid $(id -u)"
	[ -s "$CADDY_USERS_FILE" ] || die "users file $CADDY_USERS_FILE is empty: run \`npm run bootstrap\`"
	if [ -n "${AUTH_USERNAME:-}${AUTH_PASSWORD:-}" ]; then
		log "AUTH_USERNAME/AUTH_PASSWORD are ignored: the users file $CADDY_USERS_FILE is present and wins"
	fi
	log "users from $CADDY_USERS_FILE"
}

users_from_environment() {
	[ -n "${AUTH_USERNAME:-}" ] || die "AUTH_PASSWORD is set but AUTH_USERNAME is not: set both"
	[ -n "${AUTH_PASSWORD:-}" ] || die "AUTH_USERNAME is set but AUTH_PASSWORD is not: set both"
	case "$AUTH_USERNAME" in
	*[!A-Za-z0-9._@-]*) die "AUTH_USERNAME may contain only letters, digits and . _ @ -" ;;
	esac
	case "$AUTH_PASSWORD" in
	*"
"*) die "AUTH_PASSWORD must be a single line" ;;
	esac
	[ "${#AUTH_PASSWORD}" -ge "$MIN_PASSWORD_LENGTH" ] || die "AUTH_PASSWORD is shorter than $MIN_PASSWORD_LENGTH characters: set a longer one"

	users_dir="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/caddy-users.XXXXXX")"
	# caddy hash-password reads one line from stdin when --plaintext is absent and drops its newline (caddy 2.6 and
	# 2.11: modules/caddyhttp/caddyauth/command.go, ReadBytes('\n')); 2.6 fails without the newline.
	hash="$(printf '%s\n' "$AUTH_PASSWORD" | caddy hash-password 2>/dev/null)" || die "caddy hash-password failed"
	case "$hash" in
	\$2*) ;;
	*) die "caddy hash-password did not print a bcrypt hash" ;;
	esac
	(umask 077 && printf '%s %s\n' "$AUTH_USERNAME" "$hash" >"$users_dir/users")
	export CADDY_USERS_FILE="$users_dir/users"
	unset AUTH_PASSWORD hash
	log "user $AUTH_USERNAME from AUTH_USERNAME/AUTH_PASSWORD (bcrypt-hashed at start into $CADDY_USERS_FILE)"
}

setup_users() {
	if [ -z "${CADDY_USERS_FILE:-}" ] && [ -f "$CADDY_SECRETS_DIR/proxy_users_caddy" ]; then
		CADDY_USERS_FILE="$CADDY_SECRETS_DIR/proxy_users_caddy"
	fi
	if [ -n "${CADDY_USERS_FILE:-}" ]; then
		export CADDY_USERS_FILE
		users_from_file
	elif [ -n "${AUTH_USERNAME:-}${AUTH_PASSWORD:-}" ]; then
		users_from_environment
	else
		die "no users: set AUTH_USERNAME and AUTH_PASSWORD, or provide the users file of \`npm run bootstrap\` at $CADDY_SECRETS_DIR/proxy_users_caddy"
	fi
}

setup_listener() {
	if [ -n "${CADDY_SITE_ADDRESS:-}" ]; then
		log "site address (CADDY_SITE_ADDRESS as given): $CADDY_SITE_ADDRESS"
	elif [ -n "${PORT:-}" ]; then
		case "$PORT" in
		*[!0-9]*) die "PORT must be a port number, found '$PORT'" ;;
		esac
		export CADDY_SITE_ADDRESS=":$PORT"
		log "listening on :$PORT (plain HTTP: the platform terminates TLS)"
	fi
	log "upstream: ${MLFLOW_UPSTREAM:-mlflow:5000}"
}

main() {
	if [ "$#" -eq 0 ]; then
		set -- caddy run --config "${CADDYFILE:-/etc/caddy/Caddyfile}" --adapter caddyfile
	fi
	setup_listener
	setup_users
	exec "$@"
}

main "$@"
