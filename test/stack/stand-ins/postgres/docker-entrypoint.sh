#!/usr/bin/env bash
# Modelled on docker-library/postgres 18/trixie/docker-entrypoint.sh (the parts this stack relies on): file_env for
# POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB and POSTGRES_INITDB_ARGS (VAR and VAR_FILE exclusive), the PG18
# old-layout refusal, initdb on an empty PGDATA with a socket-only temporary server, then exec as user postgres.
set -Eeo pipefail

file_env() {
	local var="$1" fileVar="${1}_FILE" def="${2:-}"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$fileVar"
		exit 1
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		val="$(<"${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

docker_setup_env() {
	file_env 'POSTGRES_PASSWORD'
	file_env 'POSTGRES_USER' 'postgres'
	file_env 'POSTGRES_DB' "$POSTGRES_USER"
	file_env 'POSTGRES_INITDB_ARGS'
	declare -g DATABASE_ALREADY_EXISTS
	if [ -s "$PGDATA/PG_VERSION" ]; then DATABASE_ALREADY_EXISTS='true'; fi
	# PG18+: refuse data in the pre-18 places (or a mount at the old path) when PGDATA is the default and empty.
	if [ -z "${DATABASE_ALREADY_EXISTS:-}" ] && [ "$PGDATA" = /var/lib/postgresql/18/docker ]; then
		local old=()
		for d in /var/lib/postgresql /var/lib/postgresql/data /var/lib/postgresql/*/docker; do
			[ -s "$d/PG_VERSION" ] && old+=("$d")
		done
		if [ "${#old[@]}" -eq 0 ] && mountpoint -q /var/lib/postgresql/data 2>/dev/null; then
			old+=('/var/lib/postgresql/data (unused mount/volume)')
		fi
		if [ "${#old[@]}" -gt 0 ]; then
			printf >&2 'Error: in 18+, these Docker images are configured to store database data in a format which is\n'
			printf >&2 'compatible with "pg_ctlcluster"; old data or a mount was found in: %s\n' "${old[*]}"
			exit 1
		fi
	fi
}

docker_create_db_directories() {
	mkdir -p "$PGDATA" && chmod 00700 "$PGDATA"
	mkdir -p /var/run/postgresql && chmod 03775 /var/run/postgresql
	if [ "$(id -u)" = '0' ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

docker_init_database_dir() {
	if [ -z "$POSTGRES_PASSWORD" ]; then
		printf >&2 'Error: Database is uninitialized and superuser password is not specified.\n'
		printf >&2 '       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.\n'
		exit 1
	fi
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official script
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
	printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
}

docker_temp_server_start() {
	PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
}

docker_setup_db() {
	if [ "$POSTGRES_DB" != 'postgres' ]; then
		PGPASSWORD='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres \
			--set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
	fi
}

_main() {
	if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
	if [ "$1" = 'postgres' ]; then
		docker_setup_env
		docker_create_db_directories
		if [ "$(id -u)" = '0' ]; then
			exec gosu postgres "${BASH_SOURCE[0]}" "$@"
		fi
		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			docker_init_database_dir
			docker_temp_server_start
			docker_setup_db
			PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
			echo 'PostgreSQL init process complete; ready for start up.'
		else
			echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
		fi
	fi
	exec "$@"
}

_main "$@"
