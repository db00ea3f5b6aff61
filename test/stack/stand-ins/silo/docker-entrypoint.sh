#!/bin/sh
# As Silo's dockerscripts/docker-entrypoint.sh is described (docs/upgrade/single-node-from-archived-minio.md: "`minio
# server …` invocations translate transparently"): `minio` becomes `silo`, and any other first argument but `silo`
# gets `silo` put in front, as MinIO's entrypoint did with `minio`.
if [ "${1}" = "minio" ]; then
	shift
	set -- silo "$@"
elif [ "${1}" != "silo" ] && [ -n "${1}" ]; then
	set -- silo "$@"
fi
exec "$@"
