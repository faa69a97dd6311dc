#!/usr/bin/env bash
# CI: run `npm run test:docker` for real on a machine where no image can be
# pulled: install docker.io and debootstrap from Debian, start dockerd (unless
# one is already running), build the base image locally (scripts/docker-base.sh),
# run the Docker tests against it, and stop the dockerd it started.
# Needs root and a Debian/Ubuntu host with apt. Every step is time-bounded,
# and all of them together by CI_DOCKER_BUDGET (seconds, default 2700).
#   scripts/ci-docker.sh            (from .ci/run, after npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."

t0=$SECONDS
# The whole script stays within this many seconds (default 45 min): every step
# gets its own cap, cut to what is left of the budget.
BUDGET=${CI_DOCKER_BUDGET:-2700}
declare -a summary=()
left() { # cap: seconds for the next step (1 once the budget is spent)
  local rest=$((BUDGET - (SECONDS - t0)))
  [ "$rest" -gt 0 ] || rest=1
  echo $(($1 < rest ? $1 : rest))
}
phase() { phase_name=$1; phase_start=$SECONDS; echo; echo "==> ci-docker: $1"; }
phase_done() { summary+=("$(printf '%4d s  %s' $((SECONDS - phase_start)) "$phase_name")"); }
die() {
  echo "ci-docker: FAIL: $* (after $((SECONDS - t0)) s; '${phase_name:-}' ran $((SECONDS - ${phase_start:-0})) s)" >&2
  [ ${#summary[@]} -eq 0 ] || printf '  %s\n' "${summary[@]}" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (dockerd, debootstrap)"

phase "install docker.io and debootstrap"
need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  timeout "$(left 300)" apt-get -o DPkg::Lock::Timeout=120 update -qq
  DEBIAN_FRONTEND=noninteractive timeout "$(left 600)" apt-get -o DPkg::Lock::Timeout=120 install -y -qq "${need[@]}" >/dev/null
  echo "installed: ${need[*]}"
else
  echo "already installed"
fi
# Debian's client matches Debian's daemon (another docker client may come
# first on PATH).
DOCKER=${DOCKER:-/usr/bin/docker}
export DOCKER
phase_done

phase "start dockerd"
started_pid=""
log=/var/log/iomux-ci-dockerd.log
stop_dockerd() {
  [ -n "$started_pid" ] || return 0
  echo "ci-docker: stopping dockerd (pid $started_pid)"
  kill "$started_pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$started_pid" 2>/dev/null || break; sleep 1; done
  kill -9 "$started_pid" 2>/dev/null || true
  started_pid=""
}
trap stop_dockerd EXIT

start_dockerd() { # storage-driver
  # No iptables/bridge: builds use the host network, tests --network=none
  # (loopback only), so the host's firewall is never touched.
  setsid /usr/sbin/dockerd --iptables=false --ip-masq=false --bridge=none \
    --storage-driver="$1" >"$log" 2>&1 </dev/null &
  started_pid=$!
  for _ in $(seq 1 60); do
    if $DOCKER info >/dev/null 2>&1; then return 0; fi
    kill -0 "$started_pid" 2>/dev/null || break
    sleep 1
  done
  echo "dockerd with --storage-driver=$1 did not come up; last log lines:" >&2
  tail -n 15 "$log" >&2
  stop_dockerd
  return 1
}

if $DOCKER info >/dev/null 2>&1; then
  echo "a docker daemon is already running: using it"
else
  # overlay2 is the fast one; vfs works on any filesystem (slow, but works).
  start_dockerd overlay2 || start_dockerd vfs || die "dockerd does not start (see $log)"
  echo "dockerd pid $started_pid, $($DOCKER info -f '{{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupVersion}}')"
fi
phase_done

phase "base image (debootstrap bookworm + this machine's node)"
# One retry: debootstrap downloads from the Debian mirror.
BASE=$(timeout "$(left 600)" scripts/docker-base.sh) ||
  { echo "ci-docker: base image failed, retrying once"; BASE=$(timeout "$(left 600)" scripts/docker-base.sh); } ||
  die "scripts/docker-base.sh failed"
export BASE
phase_done

phase "npm run test:docker (BASE=$BASE)"
timeout "$(left 2400)" npm run test:docker || die "npm run test:docker failed"
phase_done

phase "clean up dangling images"
$DOCKER image prune -f >/dev/null || true
phase_done

echo
echo "ci-docker: PASS in $((SECONDS - t0)) s"
printf '  %s\n' "${summary[@]}"
