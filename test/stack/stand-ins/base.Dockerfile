# The base of every stand-in: the imported debootstrap (minbase, trixie) root file system, plus apt's package lists so
# each stand-in only runs `apt-get install` (no recommends, as the official images install).
FROM mlflow-stack-test/trixie-rootfs
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive
ARG MIRROR=http://deb.debian.org/debian
RUN printf 'deb %s trixie main\n' "$MIRROR" >/etc/apt/sources.list \
    && rm -f /etc/apt/sources.list.d/* \
    && printf 'APT::Install-Recommends "0";\nAPT::Install-Suggests "0";\n' >/etc/apt/apt.conf.d/01norecommends \
    && apt-get update -qq
