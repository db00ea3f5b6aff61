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
#   The bcrypt cost follows the password: 4 when it looks generated (>= 24 characters, >= 12 distinct ones, >= 2 of
#   lower case/upper case/digits/other), else 12, with `caddy hash-password --bcrypt-cost` (caddy 2.8+,
#   modules/caddyhttp/caddyauth/command.go). Caddy 2.6 has no such flag and always hashes at cost 14.
# User guard: CADDY_GUARD_FILE as given, else built here from the users file in use (the file `npm run bootstrap`
#   writes as secrets/proxy_users.caddy_guard, byte for byte: scripts/lib/caddy-user-guard.ts). It lets only requests
#   that name a known user reach basicauth, which would check any other name against a cost-14 dummy hash. With
#   AUTH_USERNAME/AUTH_PASSWORD and a password that looks generated (cost 4 above), the request must also carry the
#   password's first 3 characters (about 18 bits: a 24-character random password keeps >= 120), so a wrong password
#   is as cheap as an unknown user; a password that fails the rule (cost 12) never gets a character into the guard.
#   The rule is a heuristic: a human password that passes it already gets the low cost, which is the larger risk.
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

	users_dir="$(private_dir)"
	cost="$(printf '%s' "$AUTH_PASSWORD" | bcrypt_cost_for_password)"
	# caddy hash-password reads one line from stdin when --plaintext is absent and drops its newline (caddy 2.6 and
	# 2.11: modules/caddyhttp/caddyauth/command.go, ReadBytes('\n')); 2.6 fails without the newline.
	if caddy hash-password --help 2>&1 | grep -q -e '--bcrypt-cost'; then
		hash="$(printf '%s\n' "$AUTH_PASSWORD" | caddy hash-password --bcrypt-cost "$cost" 2>/dev/null)" || die "caddy hash-password failed"
		cost_note="bcrypt cost $cost"
	else
		hash="$(printf '%s\n' "$AUTH_PASSWORD" | caddy hash-password 2>/dev/null)" || die "caddy hash-password failed"
		cost_note="bcrypt cost 14: this caddy has no --bcrypt-cost"
	fi
	case "$hash" in
	\$2*) ;;
	*) die "caddy hash-password did not print a bcrypt hash" ;;
	esac
	(umask 077 && printf '%s %s\n' "$AUTH_USERNAME" "$hash" >"$users_dir/users")
	# The guard's password prefix: generated-looking passwords only (printf is a builtin: no argument shows it).
	guard_user="$AUTH_USERNAME"
	guard_password_prefix=""
	if [ "$cost" = 4 ]; then
		guard_password_prefix="$(printf '%s' "$AUTH_PASSWORD" | LC_ALL=C awk '{ print substr($0, 1, 3); exit }')"
	fi
	export CADDY_USERS_FILE="$users_dir/users"
	unset AUTH_PASSWORD hash
	log "user $AUTH_USERNAME from AUTH_USERNAME/AUTH_PASSWORD (hashed at start into $CADDY_USERS_FILE, $cost_note)"
}

# A new 0700 directory for files only Caddy's user may read.
private_dir() {
	(umask 077 && mktemp -d "${TMPDIR:-/tmp}/caddy-users.XXXXXX")
}

# The bcrypt cost for the password on stdin: 4 when it looks generated (a random 24+ character string from a
# generator or ${{secret(32)}}: brute force is hopeless whatever the cost, and a wrong password stays cheap for the
# proxy), else 12 (scripts/lib/password-hashes.ts: chosen passwords).
bcrypt_cost_for_password() {
	LC_ALL=C awk '
		{ text = text (NR > 1 ? "\n" : "") $0 }
		END {
			n = length(text)
			for (i = 1; i <= n; i++) {
				c = substr(text, i, 1)
				if (!(c in seen)) { seen[c] = 1; distinct++ }
				if (c ~ /[a-z]/) lower = 1
				else if (c ~ /[A-Z]/) upper = 1
				else if (c ~ /[0-9]/) digit = 1
				else other = 1
			}
			print (n >= 24 && distinct >= 12 && lower + upper + digit + other >= 2) ? 4 : 12
		}'
}

# The guard file for the users file $1, exactly as scripts/lib/caddy-user-guard.ts writes it: a matcher for every
# request whose Authorization is not "Basic " + the base64 of "<known user>:..." (see there for the why and how).
# User names must be printable ASCII without ":" (bootstrap and AUTH_USERNAME allow less). The user $guard_user must
# also send $guard_password_prefix (given to awk in its environment, not as an argument), unless that holds a byte
# outside printable ASCII: then the user name only.
caddy_guard_file() {
	LC_ALL=C GUARD_USER="${guard_user:-}" GUARD_PASSWORD_PREFIX="${guard_password_prefix:-}" awk '
		BEGIN {
			A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
			for (i = 32; i < 127; i++) ord[sprintf("%c", i)] = i
			split("0 26 52 62 63", S, " "); split("25 51 61 62 63", E, " ")
			# Powers of two without the power operator: busybox awk built without math support (as Debian builds it) lacks it.
			p2[0] = 1
			for (i = 1; i <= 16; i++) p2[i] = p2[i - 1] * 2
			gu = ENVIRON["GUARD_USER"]; gp = ENVIRON["GUARD_PASSWORD_PREFIX"]
			for (i = 1; i <= length(gp); i++) if (!(substr(gp, i, 1) in ord)) gp = ""
		}
		# The class of base64 characters with values lo..hi, as ranges within the runs A-Z, a-z, 0-9, +, /.
		function cls(lo, hi,   out, k, f, t) {
			out = ""
			for (k = 1; k <= 5; k++) {
				f = lo > S[k] + 0 ? lo : S[k] + 0
				t = hi < E[k] + 0 ? hi : E[k] + 0
				if (f > t) continue
				out = out (f == t ? substr(A, f + 1, 1) : substr(A, f + 1, 1) "-" substr(A, t + 1, 1))
			}
			return "[" out "]"
		}
		function prefix(user,   s, n, i, c, acc, bits, v, out, lo, ch) {
			s = user ":" (user == gu && gu != "" ? gp : ""); n = length(s); acc = 0; bits = 0; out = ""
			for (i = 1; i <= n; i++) {
				c = substr(s, i, 1)
				if (!(c in ord)) { bad = user; return "" }
				acc = acc * 256 + ord[c]; bits += 8
				# "+" is a quantifier in a regex: "[+]" (no backslash, which CEL would read as an escape).
				while (bits >= 6) { bits -= 6; v = int(acc / p2[bits]); ch = substr(A, v + 1, 1); out = out (ch == "+" ? "[+]" : ch); acc -= v * p2[bits] }
			}
			if (bits == 0) return out
			lo = acc * p2[6 - bits]
			return out cls(lo, lo + p2[6 - bits] - 1)
		}
		{ sub(/^[ \t]+/, "") }
		$0 == "" || /^#/ { next }
		{
			user = $1
			if (index(user, ":") > 0) bad = user
			if (user in done) next
			done[user] = 1
			alternatives = alternatives (alternatives == "" ? "" : "|") prefix(user)
		}
		END {
			if (bad != "") { print "user name " bad " cannot be guarded (printable ASCII without \":\" only)" > "/dev/stderr"; exit 1 }
			if (alternatives == "") { print "no users" > "/dev/stderr"; exit 1 }
			print "# Written by npm run bootstrap (and caddy/docker-entrypoint.sh) from proxy_users.caddy: do not edit, it is rebuilt."
			print "# Requests that do not name a known user get 401 before basicauth (scripts/lib/caddy-user-guard.ts)."
			printf "@proxy_unknown_user expression `!{http.request.header.Authorization}.matches(\"^[Bb][Aa][Ss][Ii][Cc] (?:%s)[A-Za-z0-9+/]*=*$\")`\n", alternatives
		}' "$1"
}

setup_guard() {
	if [ -n "${CADDY_GUARD_FILE:-}" ]; then
		[ -r "$CADDY_GUARD_FILE" ] || die "CADDY_GUARD_FILE: $CADDY_GUARD_FILE is not readable: unset it, and the guard is built from the users file"
		log "user guard from $CADDY_GUARD_FILE"
		return
	fi
	guard_dir="${users_dir:-$(private_dir)}"
	(umask 077 && caddy_guard_file "$CADDY_USERS_FILE" >"$guard_dir/guard") || die "cannot build the user guard from $CADDY_USERS_FILE"
	export CADDY_GUARD_FILE="$guard_dir/guard"
	log "user guard built from $CADDY_USERS_FILE into $CADDY_GUARD_FILE"
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
	setup_guard
	exec "$@"
}

main "$@"
