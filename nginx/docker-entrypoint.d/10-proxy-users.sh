#!/bin/sh
# Makes the proxy users file readable by nginx's worker processes. The official nginx image runs this as root before
# nginx starts (every executable /docker-entrypoint.d/*.sh, in name order; a failure stops the container).
#
# Why: compose file secrets are bind mounts that keep the host file's owner and mode (bootstrap writes 0600; compose
# ignores uid/gid/mode for file secrets), and nginx reads auth_basic_user_file in the WORKER processes (user nginx,
# uid 101), so the secret itself would be unreadable there and every request would answer 500. This copies it to
# $NGINX_HTPASSWD (the path the template uses) with mode 0440, group nginx.
#
# Overridable for tests outside a container: PROXY_USERS_SECRET (the compose secret), NGINX_HTPASSWD_GROUP.

proxy_users_fail() {
    echo "10-proxy-users.sh: ERROR: $*" >&2
    exit 1
}

proxy_users_install() {
    secret=${PROXY_USERS_SECRET:-/run/secrets/proxy_users_htpasswd}
    target=${NGINX_HTPASSWD:-}
    group=${NGINX_HTPASSWD_GROUP:-nginx}

    [ -n "$target" ] || proxy_users_fail "NGINX_HTPASSWD is not set: the compose overlay sets it to the users file path nginx reads"
    [ "$target" != "$secret" ] || proxy_users_fail "NGINX_HTPASSWD must not be the secret itself ($secret): workers cannot read it"
    [ -f "$secret" ] || proxy_users_fail "users file $secret is missing: run npm run bootstrap, then start the stack again"
    [ -s "$secret" ] || proxy_users_fail "users file $secret is empty: run npm run bootstrap to write it"
    grep -q '^[^:#][^:]*:..' "$secret" || proxy_users_fail "users file $secret has no <user>:<hash> line: run npm run bootstrap to rewrite it"

    # Write next to the target, then rename: nginx never sees a half-written or too-open file.
    mkdir -p "$(dirname "$target")" || proxy_users_fail "cannot create the directory of $target"
    tmp="$target.tmp.$$"
    (umask 077 && cp "$secret" "$tmp") || proxy_users_fail "cannot copy $secret to $tmp"
    if ! chgrp "$group" "$tmp" || ! chmod 0440 "$tmp" || ! mv -f "$tmp" "$target"; then
        rm -f "$tmp"
        proxy_users_fail "cannot install $target with group $group and mode 0440"
    fi
    echo "10-proxy-users.sh: installed $target (mode 0440, group $group) from $secret"
}

proxy_users_install
