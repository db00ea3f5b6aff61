#!/bin/sh
# Entrypoint of the mlflow image: turns the Compose secrets (files under /run/secrets) into the settings MLflow reads
# from its environment, then execs the MLflow server. Written in the style of docker-library/postgres' `file_env`.
#
#   docker-entrypoint.sh [server] [extra `mlflow server` options...]   the default (CMD): the tracking server
#   docker-entrypoint.sh db-upgrade     migrate the database schema after an MLflow upgrade (take a backup first)
#   docker-entrypoint.sh COMMAND...     any other command, with the same environment (e.g. `mlflow gc`)
#
# Secrets never reach a command line or the log: the database URI (which holds the password) travels in
# MLFLOW_BACKEND_STORE_URI, which `mlflow server` reads; the S3 key in AWS_SECRET_ACCESS_KEY. No `set -x` here.
#
# Settings, Compose (the compose.yml `mlflow` service sets them from .env; its secret files win when present):
#   POSTGRES_USER, POSTGRES_DB, POSTGRES_HOST (db), POSTGRES_PORT (5432)
#   POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (default $MLFLOW_SECRETS_DIR/postgres_password)
#   AWS_ACCESS_KEY_ID or AWS_ACCESS_KEY_ID_FILE, AWS_SECRET_ACCESS_KEY or AWS_SECRET_ACCESS_KEY_FILE
#     (default $MLFLOW_SECRETS_DIR/minio_root_password), MLFLOW_S3_ENDPOINT_URL (http://minio:9000), MLFLOW_BUCKET
# Settings, platforms without Compose secrets (Railway, Heroku, Render, Fly.io, Cloud Run: environment only):
#   DATABASE_URL or DB_URL   postgres://USER:PASSWORD@HOST:5432/DB[?sslmode=require...] as the platforms write it
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MLFLOW_BUCKET (or AWS_S3_BUCKET_NAME), MLFLOW_S3_ENDPOINT_URL (or
#     AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL; none of them = AWS S3 itself), AWS_DEFAULT_REGION
#   MLFLOW_ALLOW_SQLITE=true  without a database URL: SQLite (and, without a bucket, local artifacts) under
#     MLFLOW_DATA_DIR (/tmp/mlflow), lost whenever the platform replaces the container's disk
#   PORT, MLFLOW_PORT (wins over PORT), MLFLOW_HOST (0.0.0.0; "::" on Railway's IPv6 private network)
#   RAILWAY_PUBLIC_DOMAIN, RENDER_EXTERNAL_HOSTNAME, FLY_APP_NAME (.fly.dev), HEROKU_APP_DEFAULT_DOMAIN_NAME (Heroku's
#     runtime-dyno-metadata): added to the allowed hosts like DOMAIN
#   MLFLOW_S3_ADDRESSING_STYLE   virtual or path (boto3's default when unset)
# Both:
#   DOMAIN (localhost), MLFLOW_SERVER_ALLOWED_HOSTS (derived from DOMAIN unless set), MLFLOW_WORKERS (2),
#   MLFLOW_UVICORN_OPTS (keep-alive suited to a proxy in front), MLFLOW_BACKEND_STORE_URI (built unless set)
#   MLFLOW_SECRETS_DIR (/run/secrets; the tests point it at a temporary directory)
set -eu

MLFLOW_SECRETS_DIR="${MLFLOW_SECRETS_DIR:-/run/secrets}"

log() { printf 'mlflow-entrypoint: %s\n' "$*" >&2; }
die() {
	printf 'mlflow-entrypoint: error: %s\n' "$*" >&2
	exit 1
}

# file_env VAR [DEFAULT_FILE]
# Exports VAR from VAR itself, or from the file named by VAR_FILE, or from DEFAULT_FILE; VAR and VAR_FILE together are
# refused (as the postgres image does), a missing or empty file is an error that says what to do. Trailing newlines of
# the file are dropped. Only ever called with our own fixed variable names, so the evals see no outside input.
file_env() {
	fe_var="$1"
	fe_file_var="${1}_FILE"
	eval "fe_value=\${$fe_var:-}"
	eval "fe_file=\${$fe_file_var:-}"
	if [ -n "$fe_value" ] && [ -n "$fe_file" ]; then
		die "both $fe_var and $fe_file_var are set (but are exclusive): keep only $fe_file_var"
	fi
	if [ -z "$fe_value" ]; then
		fe_file="${fe_file:-${2:-}}"
		[ -n "$fe_file" ] || die "$fe_var is not set: set $fe_var (or $fe_file_var, the file that holds it)"
		[ -f "$fe_file" ] || die "$fe_var: secret file $fe_file does not exist: set $fe_var, or (Compose) run \`npm run bootstrap\` and check the service's \`secrets:\` in compose.yml"
		[ -r "$fe_file" ] || die "$fe_var: secret file $fe_file is not readable by uid $(id -u)"
		fe_value="$(cat "$fe_file")"
		[ -n "$fe_value" ] || die "$fe_var: secret file $fe_file is empty: run \`npm run bootstrap\`"
	fi
	export "$fe_var=$fe_value"
	unset "$fe_file_var" fe_value fe_file
}

sqlite_allowed() { [ "${MLFLOW_ALLOW_SQLITE:-}" = true ]; }

# The Compose secret (or a POSTGRES_PASSWORD given directly) decides: Compose wiring wins over a DATABASE_URL.
compose_database() {
	[ -n "${POSTGRES_PASSWORD:-}" ] || [ -n "${POSTGRES_PASSWORD_FILE:-}" ] || [ -f "$MLFLOW_SECRETS_DIR/postgres_password" ]
}

setup_backend_store() {
	if [ -n "${MLFLOW_BACKEND_STORE_URI:-}" ]; then
		log "using the MLFLOW_BACKEND_STORE_URI given in the environment"
		return
	fi
	if [ -n "${DATABASE_URL:-}" ]; then
		database_url_var=DATABASE_URL
	elif [ -n "${DB_URL:-}" ]; then
		database_url_var=DB_URL
	else
		database_url_var=
	fi
	if compose_database || { [ -z "$database_url_var" ] && [ -n "${POSTGRES_USER:-}" ]; }; then
		[ -z "$database_url_var" ] || log "$database_url_var is ignored: the Compose database settings (POSTGRES_*) are present and win"
		backend_from_compose
	elif [ -n "$database_url_var" ]; then
		backend_from_url "$database_url_var"
	elif sqlite_allowed; then
		backend_sqlite
	else
		die "no database: set DATABASE_URL (postgres://USER:PASSWORD@HOST:5432/DB), or MLFLOW_ALLOW_SQLITE=true to accept a local SQLite file that is lost when the container restarts"
	fi
	unset DATABASE_URL DB_URL
}

backend_from_compose() {
	file_env POSTGRES_PASSWORD "$MLFLOW_SECRETS_DIR/postgres_password"
	: "${POSTGRES_USER:?set POSTGRES_USER (in .env)}"
	POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
	POSTGRES_HOST="${POSTGRES_HOST:-db}"
	POSTGRES_PORT="${POSTGRES_PORT:-5432}"
	# One python3 call builds the URI from the environment, percent-encoding user, password and database name (every
	# byte but unreserved ones), so the password never appears as an argument.
	MLFLOW_BACKEND_STORE_URI="$(POSTGRES_DB="$POSTGRES_DB" POSTGRES_HOST="$POSTGRES_HOST" POSTGRES_PORT="$POSTGRES_PORT" \
		python3 -c 'import os, sys
from urllib.parse import quote
e = os.environ
q = lambda name: quote(e[name], safe="")
# psycopg2 explicitly: a plain postgresql:// lets SQLAlchemy choose the driver; the image installs psycopg2.
sys.stdout.write("postgresql+psycopg2://%s:%s@%s:%s/%s" % (
    q("POSTGRES_USER"), q("POSTGRES_PASSWORD"), e["POSTGRES_HOST"], e["POSTGRES_PORT"], q("POSTGRES_DB")))')"
	export MLFLOW_BACKEND_STORE_URI
	unset POSTGRES_PASSWORD
	log "backend store: postgresql+psycopg2://$POSTGRES_USER:***@$POSTGRES_HOST:$POSTGRES_PORT/$POSTGRES_DB"
}

# backend_from_url VAR: DATABASE_URL as Heroku and Railway write it (postgres://...) -> the URI SQLAlchemy accepts
# (postgresql+psycopg2://; SQLAlchemy 1.4+ refuses the postgres:// alias). Query parameters such as sslmode=require
# are kept as given. User, password and database name are decoded and re-encoded, so an already percent-encoded
# password stays as it is and a raw one with @ : / ? # gets encoded (the host starts after the LAST @). Python reads
# the URL from the environment and logs it with the password (and any *pass* query value) replaced by ***.
backend_from_url() {
	MLFLOW_BACKEND_STORE_URI="$(DATABASE_URL_VAR="$1" python3 -c 'import os, sys
from urllib.parse import quote, unquote
name = os.environ["DATABASE_URL_VAR"]
url = os.environ[name]
def fail(message):
    sys.stderr.write("mlflow-entrypoint: error: %s: %s\n" % (name, message))
    sys.exit(1)
scheme, sep, rest = url.partition("://")
if not sep:
    fail("expected postgres://USER:PASSWORD@HOST:5432/DATABASE")
if scheme.lower() not in ("postgres", "postgresql", "postgresql+psycopg2"):
    fail("only PostgreSQL is supported (postgres:// or postgresql://, found %s://); set MLFLOW_BACKEND_STORE_URI for another database" % scheme)
at = rest.rfind("@")
userinfo, hostpart = (rest[:at], rest[at + 1:]) if at >= 0 else (None, rest)
hostport, _, pathquery = hostpart.partition("/")
database, has_query, query = pathquery.partition("?")
if not hostport:
    fail("names no host (expected postgres://USER:PASSWORD@HOST:5432/DATABASE)")
if not database:
    fail("names no database (expected postgres://USER:PASSWORD@HOST:5432/DATABASE)")
enc = lambda part: quote(unquote(part), safe="")
auth = shown = ""
if userinfo is not None:
    user, has_password, password = userinfo.partition(":")
    auth = enc(user) + (":" + enc(password) if has_password else "") + "@"
    shown = enc(user) + (":***" if has_password else "") + "@"
suffix = "?" + query if has_query else ""
shown_query = "&".join(
    (p.partition("=")[0] + "=***") if "pass" in p.partition("=")[0].lower() else p for p in query.split("&"))
sys.stdout.write("postgresql+psycopg2://%s%s/%s%s" % (auth, hostport, enc(database), suffix))
sys.stderr.write("mlflow-entrypoint: backend store (from %s): postgresql+psycopg2://%s%s/%s%s\n" % (
    name, shown, hostport, enc(database), "?" + shown_query if has_query else ""))')"
	export MLFLOW_BACKEND_STORE_URI
}

backend_sqlite() {
	MLFLOW_DATA_DIR="${MLFLOW_DATA_DIR:-/tmp/mlflow}"
	mkdir -p "$MLFLOW_DATA_DIR"
	export MLFLOW_BACKEND_STORE_URI="sqlite:///$MLFLOW_DATA_DIR/mlflow.db"
	log "WARNING: no DATABASE_URL, MLFLOW_ALLOW_SQLITE=true: SQLite at $MLFLOW_DATA_DIR/mlflow.db is LOST when the container's disk is replaced (restart, redeploy)"
}

# Sets ARTIFACTS_DESTINATION: the bucket (MLflow proxies it as mlflow-artifacts:/), or with MLFLOW_ALLOW_SQLITE=true
# and no bucket a local directory. Compose mode (no AWS_SECRET_ACCESS_KEY in the environment: the secret file) keeps
# the MinIO endpoint as default; environment mode uses the endpoint given, or AWS S3 itself when there is none.
setup_artifact_store() {
	MLFLOW_BUCKET="${MLFLOW_BUCKET:-${AWS_S3_BUCKET_NAME:-}}"
	if [ -z "$MLFLOW_BUCKET" ]; then
		sqlite_allowed || die "no artifact store: set MLFLOW_BUCKET with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and MLFLOW_S3_ENDPOINT_URL (none for AWS S3), or MLFLOW_ALLOW_SQLITE=true for local artifacts that are lost on restart"
		MLFLOW_DATA_DIR="${MLFLOW_DATA_DIR:-/tmp/mlflow}"
		mkdir -p "$MLFLOW_DATA_DIR/artifacts"
		ARTIFACTS_DESTINATION="$MLFLOW_DATA_DIR/artifacts"
		log "WARNING: no MLFLOW_BUCKET, MLFLOW_ALLOW_SQLITE=true: artifacts in $ARTIFACTS_DESTINATION are LOST when the container's disk is replaced"
		return
	fi
	case "$MLFLOW_BUCKET" in
	*/* | *' '*) die "MLFLOW_BUCKET must be a bare bucket name, found '$MLFLOW_BUCKET'" ;;
	esac
	if [ -n "${AWS_SECRET_ACCESS_KEY:-}" ]; then
		endpoint="${MLFLOW_S3_ENDPOINT_URL:-${AWS_ENDPOINT_URL_S3:-${AWS_ENDPOINT_URL:-}}}"
	else
		endpoint="${MLFLOW_S3_ENDPOINT_URL:-http://minio:9000}"
	fi
	file_env AWS_ACCESS_KEY_ID
	file_env AWS_SECRET_ACCESS_KEY "$MLFLOW_SECRETS_DIR/minio_root_password"
	if [ -n "$endpoint" ]; then
		export MLFLOW_S3_ENDPOINT_URL="$endpoint"
	else
		unset MLFLOW_S3_ENDPOINT_URL
		endpoint="AWS S3 (${AWS_DEFAULT_REGION:-default region})"
	fi
	setup_s3_addressing_style
	ARTIFACTS_DESTINATION="s3://$MLFLOW_BUCKET/"
	log "artifacts: $ARTIFACTS_DESTINATION at $endpoint (proxied by MLflow as mlflow-artifacts:/)"
}

# MLFLOW_S3_ADDRESSING_STYLE=virtual|path: how boto3 names the bucket in URLs (Railway's newer buckets want virtual;
# MinIO in Compose works with boto3's default). boto3 reads it only from an AWS config file, so write one.
setup_s3_addressing_style() {
	case "${MLFLOW_S3_ADDRESSING_STYLE:-}" in
	'') return ;;
	virtual | path) ;;
	*) die "MLFLOW_S3_ADDRESSING_STYLE must be virtual or path, found '$MLFLOW_S3_ADDRESSING_STYLE'" ;;
	esac
	[ -z "${AWS_CONFIG_FILE:-}" ] || die "MLFLOW_S3_ADDRESSING_STYLE and AWS_CONFIG_FILE are both set: put addressing_style in your AWS config file instead"
	AWS_CONFIG_FILE="$(mktemp "${TMPDIR:-/tmp}/mlflow-aws-config.XXXXXX")"
	printf '[default]\ns3 =\n    addressing_style = %s\n' "$MLFLOW_S3_ADDRESSING_STYLE" >"$AWS_CONFIG_FILE"
	export AWS_CONFIG_FILE
}

# MLflow >= 3.5 rejects requests whose Host header it does not know ("Invalid Host header"). The proxies pass the
# client's Host through, so accept DOMAIN (any port), localhost and 127.0.0.1 (any port), and the Compose service
# name `mlflow` (other containers calling http://mlflow:5000).
setup_allowed_hosts() {
	if [ -n "${MLFLOW_SERVER_ALLOWED_HOSTS:-}" ]; then
		log "allowed hosts (MLFLOW_SERVER_ALLOWED_HOSTS as given): $MLFLOW_SERVER_ALLOWED_HOSTS"
		return
	fi
	hosts="localhost,localhost:*,127.0.0.1,127.0.0.1:*,mlflow,mlflow:*"
	# The public host names the platforms announce (each only when set), then DOMAIN (default localhost).
	fly_domain=
	[ -z "${FLY_APP_NAME:-}" ] || fly_domain="$FLY_APP_NAME.fly.dev"
	for spec in "RAILWAY_PUBLIC_DOMAIN=${RAILWAY_PUBLIC_DOMAIN:-}" "RENDER_EXTERNAL_HOSTNAME=${RENDER_EXTERNAL_HOSTNAME:-}" \
		"FLY_APP_NAME=$fly_domain" "HEROKU_APP_DEFAULT_DOMAIN_NAME=${HEROKU_APP_DEFAULT_DOMAIN_NAME:-}" "DOMAIN=${DOMAIN:-localhost}"; do
		name="${spec%%=*}"
		domain="${spec#*=}"
		case "$domain" in
		*[!A-Za-z0-9.-]*) die "$name must be a bare host name such as mlflow.example.com (no scheme, port or path), found '$domain'" ;;
		'' | localhost | 127.0.0.1 | mlflow) ;;
		*) case ",$hosts," in
			*",$domain,"*) ;;
			*) hosts="$domain,$domain:*,$hosts" ;;
			esac ;;
		esac
	done
	export MLFLOW_SERVER_ALLOWED_HOSTS="$hosts"
	log "allowed hosts: $MLFLOW_SERVER_ALLOWED_HOSTS"
}

setup_server() {
	MLFLOW_WORKERS="${MLFLOW_WORKERS:-2}"
	case "$MLFLOW_WORKERS" in
	'' | *[!0-9]* | 0) die "MLFLOW_WORKERS must be a positive whole number, found '$MLFLOW_WORKERS'" ;;
	esac
	# uvicorn closes idle keep-alive connections after 5 s by default; the proxy in front keeps idle upstream connections
	# longer (Caddy 2 min, nginx 60 s) and would then reuse a socket uvicorn is closing, answering 502. So uvicorn keeps
	# them for longer than either proxy. Uploads themselves have no uvicorn time limit (bodies stream).
	MLFLOW_UVICORN_OPTS="${MLFLOW_UVICORN_OPTS:---timeout-keep-alive 150}"
	# PORT is what Heroku, Render, Cloud Run and Railway tell a service to listen on; MLFLOW_PORT wins (the
	# single-container image keeps MLflow on an inner port behind the proxy that owns PORT).
	MLFLOW_PORT="${MLFLOW_PORT:-${PORT:-5000}}"
	case "$MLFLOW_PORT" in
	'' | *[!0-9]*) die "MLFLOW_PORT/PORT must be a port number, found '$MLFLOW_PORT'" ;;
	esac
	MLFLOW_HOST="${MLFLOW_HOST:-0.0.0.0}"
}

# `mlflow db upgrade` fails on an EMPTY database: there the server's first start creates the schema (and stamps it),
# so upgrading is only right when an alembic_version table exists. MLflow's own advice is to back up first, which is
# why the server never upgrades by itself: after changing MLFLOW_VERSION, take a backup and run this command. The URI
# is handed to MLflow's click command inside Python, so it never appears in a process list.
db_upgrade() {
	exec python3 - <<'PYTHON'
import os, sys
from sqlalchemy import create_engine, inspect

uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
engine = create_engine(uri)
try:
    has_schema = inspect(engine).has_table("alembic_version")
finally:
    engine.dispose()
if not has_schema:
    print("mlflow-entrypoint: empty database: nothing to upgrade (the server creates the schema on its first start)",
          file=sys.stderr)
    sys.exit(0)

from mlflow.db import upgrade

upgrade.main(args=[uri], prog_name="mlflow db upgrade", standalone_mode=True)
PYTHON
}

main() {
	if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
		set -- server "$@"
	fi
	setup_backend_store
	setup_artifact_store
	case "$1" in
	server)
		shift
		setup_allowed_hosts
		setup_server
		log "starting mlflow server on $MLFLOW_HOST:$MLFLOW_PORT with $MLFLOW_WORKERS workers"
		exec mlflow server \
			--host "$MLFLOW_HOST" \
			--port "$MLFLOW_PORT" \
			--serve-artifacts \
			--artifacts-destination "$ARTIFACTS_DESTINATION" \
			--default-artifact-root mlflow-artifacts:/ \
			--workers "$MLFLOW_WORKERS" \
			--uvicorn-opts "$MLFLOW_UVICORN_OPTS" \
			"$@"
		;;
	db-upgrade)
		db_upgrade
		;;
	*)
		exec "$@"
		;;
	esac
}

main "$@"
