#!/bin/sh
# `pip` of the mlflow base stand-in: accepts `pip install [options] -r FILE` (or package specs) naming only
# psycopg2-binary==X and boto3==X, the two packages the stand-in's `mlflow server` needs for postgresql+psycopg2://
# and s3:// (it refuses both without them). Anything else fails, as a package missing from an index would.
set -eu
site=/usr/local/lib/stand-in/site-packages
[ "${1:-}" = install ] || { echo "pip (stand-in): only 'pip install' is implemented" >&2; exit 1; }
shift
specs=""
while [ "$#" -gt 0 ]; do
	case "$1" in
	-r | --requirement) specs="$specs $(grep -v '^[[:space:]]*#' "$2" | tr -d '\r')"; shift 2 ;;
	--no-cache-dir | --disable-pip-version-check | --root-user-action=*) shift ;;
	-*) echo "pip (stand-in): unsupported option $1" >&2; exit 2 ;;
	*) specs="$specs $1"; shift ;;
	esac
done
[ -n "$(echo "$specs" | tr -d '[:space:]')" ] || { echo "ERROR: You must give at least one requirement to install" >&2; exit 1; }
mkdir -p "$site"
for spec in $specs; do
	name=${spec%%==*}
	version=${spec#*==}
	case "$name" in
	psycopg2-binary | boto3) ;;
	*) echo "ERROR: No matching distribution found for $spec (the stand-in knows psycopg2-binary and boto3)" >&2; exit 1 ;;
	esac
	if [ "$version" = "$spec" ] || [ -z "$version" ]; then
		echo "ERROR: $spec: pin an exact version (NAME==X.Y.Z)" >&2
		exit 1
	fi
	echo "$version" >"$site/$name"
	echo "Successfully installed $name-$version"
done
