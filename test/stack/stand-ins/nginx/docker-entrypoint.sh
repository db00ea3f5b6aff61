#!/bin/sh
# As nginxinc/docker-nginx's /docker-entrypoint.sh: only for `nginx`/`nginx-debug`, source executable
# /docker-entrypoint.d/*.envsh and run executable *.sh in version order (a failing script stops the container).
set -e
entrypoint_log() {
	if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then echo "$@"; fi
}
if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
	if find "/docker-entrypoint.d/" -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read -r _; then
		entrypoint_log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
		find "/docker-entrypoint.d/" -follow -type f -print | sort -V | while read -r f; do
			case "$f" in
			*.envsh)
				if [ -x "$f" ]; then
					entrypoint_log "$0: Sourcing $f"
					# shellcheck disable=SC1090
					. "$f"
				else
					entrypoint_log "$0: Ignoring $f, not executable"
				fi
				;;
			*.sh)
				if [ -x "$f" ]; then
					entrypoint_log "$0: Launching $f"
					"$f"
				else
					entrypoint_log "$0: Ignoring $f, not executable"
				fi
				;;
			*) entrypoint_log "$0: Ignoring $f" ;;
			esac
		done
		entrypoint_log "$0: Configuration complete; ready for start up"
	else
		entrypoint_log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
	fi
fi
exec "$@"
