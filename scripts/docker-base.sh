#!/usr/bin/env bash
# Builds a Debian bookworm base image with this machine's Node.js in it, for
# machines that cannot pull images (CI here): debootstrap from the Debian
# mirror apt already uses, copy node + npm + the node headers in, docker import.
# The result stands in for the official node:20-bookworm image:
#   scripts/docker-base.sh                    # builds iomux-base:bookworm-node<major>
#   BASE=$(scripts/docker-base.sh --print-tag) npm run test:docker
# Needs: root, debootstrap, a running dockerd. Re-running is cheap: the image
# is reused when it already holds the same node version (FORCE=1 rebuilds).
set -euo pipefail

DOCKER=${DOCKER:-docker}
node_bin=$(readlink -f "$(command -v node)")
node_version=$("$node_bin" -p process.version)
node_major=${node_version#v}
node_major=${node_major%%.*}
TAG=${TAG:-iomux-base:bookworm-node${node_major}}

if [ "${1:-}" = "--print-tag" ]; then
  echo "$TAG"
  exit 0
fi

log() { echo "docker-base: $*" >&2; }

if [ -z "${FORCE:-}" ] &&
  [ "$($DOCKER image inspect -f '{{index .Config.Labels "iomux.node"}}' "$TAG" 2>/dev/null || true)" = "$node_version" ]; then
  log "$TAG already holds node $node_version (FORCE=1 rebuilds)"
  echo "$TAG"
  exit 0
fi

# The Debian mirror apt uses (deb822 sources or the classic sources.list).
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

# Node's install prefix: <prefix>/bin/node, <prefix>/lib/node_modules/npm,
# <prefix>/include/node (Debian/NodeSource packages use /usr, the official
# tarballs and images /usr/local).
prefix=$(dirname "$(dirname "$node_bin")")
for need in "$prefix/lib/node_modules/npm/bin/npm-cli.js" "$prefix/include/node/node_version.h"; do
  [ -e "$need" ] || { log "cannot find $need next to $node_bin"; exit 1; }
done

work=$(mktemp -d /tmp/iomux-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

log "debootstrap bookworm (minbase) from $mirror"
start=$SECONDS
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}
log "debootstrap done in $((SECONDS - start)) s"

# The image's apt must use the same mirror; keep the image small.
cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
EOF
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb

log "copying node $node_version from $prefix into /usr/local"
mkdir -p "$root/usr/local/bin" "$root/usr/local/lib/node_modules" "$root/usr/local/include"
cp -a "$node_bin" "$root/usr/local/bin/node"
cp -a "$prefix/lib/node_modules/npm" "$root/usr/local/lib/node_modules/"
[ -d "$prefix/lib/node_modules/corepack" ] && cp -a "$prefix/lib/node_modules/corepack" "$root/usr/local/lib/node_modules/"
cp -a "$prefix/include/node" "$root/usr/local/include/"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
chroot "$root" /usr/local/bin/node -e 'console.log("node runs in the new root:", process.version)' >&2

log "docker import as $TAG"
# npm_config_nodedir: node-gyp compiles against the headers copied in above
# instead of downloading them (no network to nodejs.org here).
tar -C "$root" -c . | $DOCKER import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV npm_config_nodedir=/usr/local' \
  --change "LABEL iomux.node=$node_version" \
  --change 'CMD ["node"]' \
  - "$TAG" >&2
log "built $TAG in $((SECONDS - start)) s"
echo "$TAG"
