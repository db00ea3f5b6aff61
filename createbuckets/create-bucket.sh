#!/bin/sh
# One-off bucket job from the environment alone, for platforms without Compose secrets (a MinIO service on Railway,
# say): creates the private bucket MLFLOW_BUCKET if it does not exist, then exits 0. It does what compose.yml's
# `createbuckets` command does, with the mc of the same Silo image (createbuckets/Dockerfile), and retries while the server is starting.
#
#   MINIO_ENDPOINT      the S3 server (http://minio:9000; on Railway http://${{minio.RAILWAY_PRIVATE_DOMAIN}}:9000)
#   MINIO_ROOT_USER     its access key
#   MINIO_ROOT_PASSWORD or MINIO_ROOT_PASSWORD_FILE (default $MINIO_SECRETS_DIR/minio_root_password, /run/secrets)
#   MLFLOW_BUCKET       the bucket
#   CREATEBUCKETS_ATTEMPTS (30), CREATEBUCKETS_DELAY seconds between attempts (2)
#   MLFLOW_S3_ACCESS_KEY and MLFLOW_S3_SECRET_KEY (optional, both or neither): MLflow's own key, made a user with a
#     policy for MLFLOW_BUCKET alone (list, get, put, delete objects), as compose.yml's job does. Give MLflow these
#     instead of the root key.
#
# The keys reach `mc alias set` as two lines on stdin (printf is a shell builtin), never as arguments; mc keeps the
# alias in MC_CONFIG_DIR, a fresh 0700 directory unless set.
set -eu

log() { printf 'createbuckets: %s\n' "$*" >&2; }
die() {
	printf 'createbuckets: error: %s\n' "$*" >&2
	exit 1
}

MINIO_ENDPOINT="${MINIO_ENDPOINT:-http://minio:9000}"
MINIO_SECRETS_DIR="${MINIO_SECRETS_DIR:-/run/secrets}"
: "${MINIO_ROOT_USER:?set MINIO_ROOT_USER (the S3 access key)}"
: "${MLFLOW_BUCKET:?set MLFLOW_BUCKET (the bucket to create)}"
case "$MLFLOW_BUCKET" in
*[!a-z0-9.-]*) die "MLFLOW_BUCKET must be an S3 bucket name (lower-case letters, digits, . and -), found '$MLFLOW_BUCKET'" ;;
esac
attempts="${CREATEBUCKETS_ATTEMPTS:-30}"
delay="${CREATEBUCKETS_DELAY:-2}"

if [ -n "${MINIO_ROOT_PASSWORD:-}" ] && [ -n "${MINIO_ROOT_PASSWORD_FILE:-}" ]; then
	die "both MINIO_ROOT_PASSWORD and MINIO_ROOT_PASSWORD_FILE are set (but are exclusive): keep one"
fi
if [ -z "${MINIO_ROOT_PASSWORD:-}" ]; then
	password_file="${MINIO_ROOT_PASSWORD_FILE:-$MINIO_SECRETS_DIR/minio_root_password}"
	[ -r "$password_file" ] || die "MINIO_ROOT_PASSWORD is not set and $password_file is not readable: set MINIO_ROOT_PASSWORD (or MINIO_ROOT_PASSWORD_FILE)"
	MINIO_ROOT_PASSWORD="$(cat "$password_file")"
	[ -n "$MINIO_ROOT_PASSWORD" ] || die "$password_file is empty"
fi

case "${MLFLOW_S3_ACCESS_KEY:+a}${MLFLOW_S3_SECRET_KEY:+s}" in
a | s)
	die "set both MLFLOW_S3_ACCESS_KEY and MLFLOW_S3_SECRET_KEY (MLflow's own key), or neither"
	;;
esac
if [ -n "${MLFLOW_S3_SECRET_KEY:-}" ] && { [ "${#MLFLOW_S3_SECRET_KEY}" -lt 8 ] || [ "${#MLFLOW_S3_SECRET_KEY}" -gt 40 ]; }; then
	die "MLFLOW_S3_SECRET_KEY must be 8 to 40 characters (the server refuses others): openssl rand -base64 30"
fi

if [ -z "${MC_CONFIG_DIR:-}" ]; then
	MC_CONFIG_DIR="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/mc.XXXXXX")"
fi
export MC_CONFIG_DIR

attempt=1
until printf '%s\n%s\n' "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" | mc alias set target "$MINIO_ENDPOINT" >/dev/null 2>&1 &&
	mc mb --ignore-existing "target/$MLFLOW_BUCKET" >/dev/null; do
	[ "$attempt" -lt "$attempts" ] || die "could not create s3://$MLFLOW_BUCKET at $MINIO_ENDPOINT after $attempts attempts: is the server up, and are MINIO_ROOT_USER/MINIO_ROOT_PASSWORD its keys?"
	log "$MINIO_ENDPOINT not ready (attempt $attempt of $attempts), retrying in ${delay}s"
	attempt=$((attempt + 1))
	sleep "$delay"
done
mc anonymous set private "target/$MLFLOW_BUCKET" >/dev/null
log "bucket s3://$MLFLOW_BUCKET is ready (private) at $MINIO_ENDPOINT"

if [ -n "${MLFLOW_S3_ACCESS_KEY:-}" ]; then
	# Bucket-level actions on the bare bucket ARN, object actions on bucket/* (Silo's SN-2026-004; docs/object-store.md).
	policy="$MC_CONFIG_DIR/mlflow-bucket-policy.json"
	printf '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetBucketLocation","s3:ListBucket","s3:ListBucketMultipartUploads"],"Resource":["arn:aws:s3:::%s"]},{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Resource":["arn:aws:s3:::%s/*"]}]}\n' "$MLFLOW_BUCKET" "$MLFLOW_BUCKET" >"$policy"
	mc admin policy create target mlflow-bucket "$policy" >/dev/null || die "could not create the policy mlflow-bucket at $MINIO_ENDPOINT"
	printf '%s\n%s\n' "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY" | mc admin user add target >/dev/null || die "could not add the user $MLFLOW_S3_ACCESS_KEY at $MINIO_ENDPOINT"
	case "$(mc admin user info target "$MLFLOW_S3_ACCESS_KEY")" in
	*"PolicyName: "*mlflow-bucket*) ;;
	*) mc admin policy attach target mlflow-bucket --user "$MLFLOW_S3_ACCESS_KEY" >/dev/null || die "could not attach mlflow-bucket to $MLFLOW_S3_ACCESS_KEY" ;;
	esac
	log "user $MLFLOW_S3_ACCESS_KEY may use s3://$MLFLOW_BUCKET and nothing else"
fi
