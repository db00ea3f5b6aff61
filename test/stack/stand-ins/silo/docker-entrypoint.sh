#!/bin/sh
# As minio/minio dockerscripts/docker-entrypoint.sh: any first argument but `minio` gets `minio` put in front.
if [ "${1}" != "minio" ]; then
	if [ -n "${1}" ]; then
		set -- minio "$@"
	fi
fi
exec "$@"
