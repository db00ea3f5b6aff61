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
# Settings (environment; the compose.yml `mlflow` service sets them from .env):
#   POSTGRES_USER, POSTGRES_DB, POSTGRES_HOST (db), POSTGRES_PORT (5432)
#   POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (default $MLFLOW_SECRETS_DIR/postgres_password)
#   AWS_ACCESS_KEY_ID or AWS_ACCESS_KEY_ID_FILE, AWS_SECRET_ACCESS_KEY or AWS_SECRET_ACCESS_KEY_FILE
#     (default $MLFLOW_SECRETS_DIR/minio_root_password), MLFLOW_S3_ENDPOINT_URL (http://minio:9000), MLFLOW_BUCKET
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
		[ -n "$fe_file" ] || die "$fe_var is not set: set $fe_file_var to the file that holds it"
		[ -f "$fe_file" ] || die "$fe_var: secret file $fe_file does not exist: run \`npm run bootstrap\` and check the service's \`secrets:\` in compose.yml"
		[ -r "$fe_file" ] || die "$fe_var: secret file $fe_file is not readable by uid $(id -u)"
		fe_value="$(cat "$fe_file")"
		[ -n "$fe_value" ] || die "$fe_var: secret file $fe_file is empty: run \`npm run bootstrap\`"
	fi
	export "$fe_var=$fe_value"
	unset "$fe_file_var" fe_value fe_file
}

setup_backend_store() {
	if [ -n "${MLFLOW_BACKEND_STORE_URI:-}" ]; then
		log "using the MLFLOW_BACKEND_STORE_URI given in the environment"
		return
	fi
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

setup_artifact_store() {
	file_env AWS_ACCESS_KEY_ID
	file_env AWS_SECRET_ACCESS_KEY "$MLFLOW_SECRETS_DIR/minio_root_password"
	export MLFLOW_S3_ENDPOINT_URL="${MLFLOW_S3_ENDPOINT_URL:-http://minio:9000}"
	: "${MLFLOW_BUCKET:?set MLFLOW_BUCKET (in .env)}"
	case "$MLFLOW_BUCKET" in
	*/* | *' '* | '') die "MLFLOW_BUCKET must be a bare bucket name, found '$MLFLOW_BUCKET'" ;;
	esac
	log "artifacts: s3://$MLFLOW_BUCKET/ at $MLFLOW_S3_ENDPOINT_URL (proxied by MLflow as mlflow-artifacts:/)"
}

# MLflow >= 3.5 rejects requests whose Host header it does not know ("Invalid Host header"). The proxies pass the
# client's Host through, so accept DOMAIN (any port), localhost and 127.0.0.1 (any port), and the Compose service
# name `mlflow` (other containers calling http://mlflow:5000).
setup_allowed_hosts() {
	if [ -n "${MLFLOW_SERVER_ALLOWED_HOSTS:-}" ]; then
		log "allowed hosts (MLFLOW_SERVER_ALLOWED_HOSTS as given): $MLFLOW_SERVER_ALLOWED_HOSTS"
		return
	fi
	domain="${DOMAIN:-localhost}"
	case "$domain" in
	*[!A-Za-z0-9.-]*) die "DOMAIN must be a bare host name such as mlflow.example.com (no scheme, port or path), found '$domain'" ;;
	esac
	hosts="localhost,localhost:*,127.0.0.1,127.0.0.1:*,mlflow,mlflow:*"
	case "$domain" in
	localhost | 127.0.0.1 | mlflow) ;;
	*) hosts="$domain,$domain:*,$hosts" ;;
	esac
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
		log "starting mlflow server with $MLFLOW_WORKERS workers"
		exec mlflow server \
			--host 0.0.0.0 \
			--port 5000 \
			--serve-artifacts \
			--artifacts-destination "s3://$MLFLOW_BUCKET/" \
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
