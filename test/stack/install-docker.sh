#!/usr/bin/env bash
# Installs and starts a Docker Engine with Compose v2 and buildx on Debian 12 (bookworm), for `npm run test:stack`.
#
# bookworm's docker.io is Engine 20.10 with Compose v1 only, and Compose v2 is not packaged for it. trixie's packages
# run on bookworm when unpacked (not installed): they are fetched with `apt-get download` through a PRIVATE apt
# configuration (its own trixie sources list, state and cache under $DOCKER_STACK_DIR/apt; the system's sources and
# dpkg database are not touched) and unpacked with `dpkg-deb -x`. trixie's runc needs glibc 2.38, so runc is
# bookworm's. dockerd and containerd then run as root with their own data and exec roots under $DOCKER_STACK_DIR.
#
#   test/stack/install-docker.sh           install what is missing, start containerd and dockerd if not running
#   test/stack/install-docker.sh --stop    stop the containerd and dockerd this script started
#   test/stack/install-docker.sh --status  exit 0 if both run
#
# Idempotent: a re-run finds the unpacked binaries and the running daemon and returns at once.
# Prints `DOCKER_HOST=unix://...` last; the socket is $DOCKER_STACK_DIR/run/docker.sock.
set -euo pipefail

DOCKER_STACK_DIR="${DOCKER_STACK_DIR:-/var/lib/mlflow-stack-docker}"
TRIXIE_MIRROR="${TRIXIE_MIRROR:-http://deb.debian.org/debian}"
root="$DOCKER_STACK_DIR/root"  # unpacked packages: $root/usr/bin/dockerd etc.
run="$DOCKER_STACK_DIR/run"
socket="$run/docker.sock"
export PATH="$root/usr/bin:$root/usr/sbin:$PATH"

log() { printf 'install-docker: %s\n' "$*" >&2; }
die() {
	printf 'install-docker: error: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (dockerd needs it)"

stop() {
	for name in dockerd containerd; do
		pidfile="$run/$name.pid"
		[ -f "$pidfile" ] || continue
		pid="$(cat "$pidfile")"
		if kill -0 "$pid" 2>/dev/null; then
			log "stopping $name ($pid)"
			kill "$pid"
			for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
		fi
		rm -f "$pidfile"
	done
}

daemon_running() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }
if [ "${1:-}" = "--status" ]; then
	daemon_running containerd && daemon_running dockerd
	exit
fi
if [ "${1:-}" = "--stop" ]; then
	stop
	exit 0
fi

# The private apt configuration: every directory apt reads or writes is under $apt_dir, except the keyring
# (bookworm's debian-archive-keyring has the trixie keys) and dpkg's status file (only read, to resolve nothing).
apt_private() {
	apt_dir="$DOCKER_STACK_DIR/apt"
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc/preferences.d"
	printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$TRIXIE_MIRROR" >"$apt_dir/etc/sources.list"
	apt-get -q -o Dir::Etc::SourceList="$apt_dir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null \
		-o Dir::Etc::PreferencesParts="$apt_dir/etc/preferences.d" -o Dir::State::Lists="$apt_dir/lists" \
		-o Dir::Cache="$apt_dir/cache" -o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache="" \
		-o APT::Architecture=amd64 "$@"
}

# download_unpack APT_RUNNER PACKAGE...: fetch the .debs into a temp folder and unpack them into $root.
download_unpack() {
	runner="$1"
	shift
	debs="$(mktemp -d)"
	chown _apt "$debs" 2>/dev/null || true # apt fetches as user _apt when it can write there
	(cd "$debs" && "$runner" download "$@" >/dev/null)
	for deb in "$debs"/*.deb; do
		log "unpacking $(basename "$deb")"
		dpkg-deb -x "$deb" "$root"
	done
	rm -rf "$debs"
}
apt_system() { apt-get -q "$@"; }

# Host packages dockerd needs at run time (installed normally from bookworm): iptables for the bridge network and
# port publishing, and the tools the stand-in images are built with (debootstrap for the base image).
host_packages=(iptables debootstrap ca-certificates)
missing=()
for pkg in "${host_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing ${missing[*]} (bookworm)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

mkdir -p "$root" "$run"
plugins="$root/usr/libexec/docker/cli-plugins"
need_trixie=()
[ -x "$root/usr/sbin/dockerd" ] || need_trixie+=(docker.io)
[ -x "$root/usr/bin/containerd" ] || need_trixie+=(containerd)
[ -x "$plugins/docker-compose" ] || need_trixie+=(docker-compose)
[ -x "$plugins/docker-buildx" ] || need_trixie+=(docker-buildx)
# The Docker CLI: any on PATH will do (this machine may have one); otherwise trixie's docker-cli.
command -v docker >/dev/null || [ -x "$root/usr/bin/docker" ] || need_trixie+=(docker-cli)
if [ "${#need_trixie[@]}" -gt 0 ]; then
	log "downloading ${need_trixie[*]} (trixie, private apt configuration in $DOCKER_STACK_DIR/apt)"
	apt_private update -qq
	download_unpack apt_private "${need_trixie[@]}"
fi
if [ ! -x "$root/usr/sbin/runc" ]; then
	log "downloading runc (bookworm: trixie's needs glibc 2.38)"
	apt-get update -qq
	download_unpack apt_system runc
fi
# Compose and buildx are CLI plugins: the CLI looks for them in ~/.docker/cli-plugins (among others).
mkdir -p "$HOME/.docker/cli-plugins"
for plugin in docker-compose docker-buildx; do
	ln -sf "$plugins/$plugin" "$HOME/.docker/cli-plugins/$plugin"
done
# trixie's CLI, if it was needed, goes on PATH for the commands users (and the test) type.
if ! command -v docker >/dev/null; then
	ln -sf "$root/usr/bin/docker" /usr/local/bin/docker
fi
docker_cli="$(command -v docker)"

if ! daemon_running containerd; then
	log "starting containerd"
	mkdir -p "$DOCKER_STACK_DIR/containerd" "$run/containerd"
	# A socket left by a killed daemon (CI ends what a session left running) would look ready at once.
	rm -f "$run/containerd/containerd.sock"
	setsid containerd --root "$DOCKER_STACK_DIR/containerd" --state "$run/containerd" \
		--address "$run/containerd/containerd.sock" >"$run/containerd.log" 2>&1 </dev/null &
	echo $! >"$run/containerd.pid"
	for _ in $(seq 1 60); do [ -S "$run/containerd/containerd.sock" ] && break; sleep 0.5; done
	[ -S "$run/containerd/containerd.sock" ] || die "containerd did not start: see $run/containerd.log"
fi
if ! daemon_running dockerd; then
	log "starting dockerd"
	mkdir -p "$DOCKER_STACK_DIR/data" "$run/exec"
	rm -f "$socket"
	setsid dockerd --data-root "$DOCKER_STACK_DIR/data" --exec-root "$run/exec" --pidfile "$run/dockerd.pid.own" \
		--host "unix://$socket" --containerd "$run/containerd/containerd.sock" --storage-driver overlay2 \
		>"$run/dockerd.log" 2>&1 </dev/null &
	echo $! >"$run/dockerd.pid"
fi
for _ in $(seq 1 120); do
	DOCKER_HOST="unix://$socket" "$docker_cli" version >/dev/null 2>&1 && break
	daemon_running dockerd || die "dockerd exited: see $run/dockerd.log"
	sleep 0.5
done
DOCKER_HOST="unix://$socket" "$docker_cli" version >/dev/null 2>&1 || die "dockerd does not answer: see $run/dockerd.log"
DOCKER_HOST="unix://$socket" "$docker_cli" compose version >&2
echo "DOCKER_HOST=unix://$socket"
