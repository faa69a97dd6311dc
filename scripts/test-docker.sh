#!/usr/bin/env bash
# `npm run test:docker`: iomux built from source and tested in a Linux
# container, three times:
#   1. seccomp=docker/seccomp-io_uring.json     io_uring permitted: npm test, and
#      `iomux backends --json` must report io_uring available
#   2. seccomp=docker/seccomp-no-io_uring.json  io_uring denied with EPERM (as
#      Docker 25+'s default profile does): io_uring must be reported unavailable
#      with the seccomp reason, and npm test must still pass (the other backends)
#   3. the packed tarball installed with --ignore-scripts into the bare base
#      image (no compiler, no liburing): require('iomux') loads the committed
#      prebuild and io_uring is available
# Environment: BASE (default node:20-bookworm; scripts/docker-base.sh builds
# a local one), DOCKER (default docker), NODE_EXTRA_CA_CERTS (passed in).
# Containers run with --network=none (the tests only use loopback); builds use
# the host network. And with --cap-add IPC_LOCK, as root on the host has it:
# without it io_uring's memory counts against RLIMIT_MEMLOCK (8 MiB, which
# dockerd cannot raise here: no CAP_SYS_RESOURCE), and as rings are freed
# asynchronously, the tests that create thousands of rings in a row fail
# with ENOMEM.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
BASE=${BASE:-node:20-bookworm}
IMAGE=${IMAGE:-iomux-test:local}
PERMIT=docker/seccomp-io_uring.json
DENY=docker/seccomp-no-io_uring.json

t0=$SECONDS
step_start=$SECONDS
declare -a summary=()
step() { step_start=$SECONDS; echo; echo "==> test-docker: $*"; }
done_step() { summary+=("$(printf '%4d s  %s' $((SECONDS - step_start)) "$1")"); }
die() {
  echo "test-docker: FAIL: $* (after $((SECONDS - t0)) s; the failing step ran $((SECONDS - step_start)) s)" >&2
  [ ${#summary[@]} -eq 0 ] || printf '  %s\n' "${summary[@]}" >&2
  exit 1
}

node scripts/seccomp-profiles.js --check || die "seccomp profiles are stale"

# The CA bundle goes into the build context under a fixed, git-ignored name.
rm -f .docker-extra-ca.pem
trap 'rm -f .docker-extra-ca.pem' EXIT
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ]; then
  [ -r "$NODE_EXTRA_CA_CERTS" ] || die "NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS is not readable"
  cp "$NODE_EXTRA_CA_CERTS" .docker-extra-ca.pem
  echo "test-docker: passing NODE_EXTRA_CA_CERTS ($NODE_EXTRA_CA_CERTS) into the build"
fi

build() { # target tag
  $DOCKER build --network=host --build-arg "BASE=$BASE" --target "$1" -t "$2" . 2>&1 |
    sed -u 's/^/  | /'
  return "${PIPESTATUS[0]}"
}

step "build from source on $BASE (target test -> $IMAGE)"
# One retry: the build fetches from the Debian mirror and the npm registry,
# and the layers already built are reused.
build test "$IMAGE" || { echo "test-docker: build failed, retrying once"; build test "$IMAGE"; } ||
  die "docker build failed"
done_step "build (source build, npm ci, tsc, npm pack)"

RUN_OPTS=(--rm --network=none --cap-add IPC_LOCK)

# Runs a shell script in a fresh container under the given seccomp profile.
run_in() { # profile script
  $DOCKER run "${RUN_OPTS[@]}" --security-opt "seccomp=$1" "$IMAGE" bash -c "$2" 2>&1 |
    sed -u 's/^/  | /'
  return "${PIPESTATUS[0]}"
}

# Asserts on `iomux backends --json` inside the container.
check_backends() { # expect: available|denied
  cat <<EOF
node bin/iomux.js backends
node bin/iomux.js backends --json > /tmp/backends.json
node -e '
const list = require("/tmp/backends.json");
const get = (n) => list.find((b) => b.name === n);
const u = get("io_uring");
const want = "$1";
const fail = (m) => { console.error("check: " + m); process.exit(1); };
for (const n of ["select", "poll", "epoll"]) if (!get(n).available) fail(n + " unavailable");
if (want === "available" && !u.available) fail("io_uring unavailable under the permitting profile: " + u.reason);
if (want === "denied") {
  if (u.available) fail("io_uring available under the denying profile");
  if (!/EPERM/.test(u.reason) || !/seccomp/.test(u.reason)) fail("io_uring reason does not name EPERM and seccomp: " + u.reason);
}
console.log("check: io_uring " + (u.available ? "available" : "unavailable: " + u.reason));
'
EOF
}

uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo 0)
if [ "$uring_disabled" != 0 ]; then
  die "kernel.io_uring_disabled=$uring_disabled on this host: the permitting run could not show io_uring"
fi

step "run 1: seccomp $PERMIT (io_uring permitted): backends + npm test"
run_in "$PERMIT" "set -e; $(check_backends available); npm test" || die "run 1 (io_uring permitted) failed"
done_step "run 1: npm test, io_uring permitted"

step "run 2: seccomp $DENY (io_uring -> EPERM): backends + npm test"
run_in "$DENY" "set -e; $(check_backends denied); npm test" || die "run 2 (io_uring denied) failed"
done_step "run 2: npm test, io_uring denied by seccomp"

step "clean install of the packed tarball on the bare $BASE (no compiler, --ignore-scripts)"
build clean-install "$IMAGE-clean" ||
  { echo "test-docker: build failed, retrying once"; build clean-install "$IMAGE-clean"; } ||
  die "docker build (clean-install) failed"
out=$($DOCKER run "${RUN_OPTS[@]}" --security-opt "seccomp=$PERMIT" "$IMAGE-clean" 2>&1) ||
  die "clean install does not load: $out"
echo "  | $out"
compilers=$($DOCKER run "${RUN_OPTS[@]}" "$IMAGE-clean" sh -c 'for c in cc gcc g++ c++ clang make; do command -v $c; done; true')
node -e '
const r = JSON.parse(process.argv[1]);
const u = r.backends.find((b) => b.name === "io_uring");
if (!/\/prebuilds\/linux-x64\//.test(r.addon)) { console.error("addon not loaded from prebuilds/: " + r.addon); process.exit(1); }
if (!u.available) { console.error("io_uring unavailable in the clean install: " + u.reason); process.exit(1); }
console.log("  clean install: addon " + r.addon + ", io_uring available");
' "$(echo "$out" | tail -n 1)" || die "clean install check failed"
echo "  compilers in the clean image: ${compilers:-none}"
done_step "clean install from the tarball"

echo
echo "test-docker: PASS ($((SECONDS - t0)) s, base $BASE)"
printf '  %s\n' "${summary[@]}"
