// io_uring as a readiness multiplexer: one IORING_OP_POLL_ADD per fd.
// Level mode re-arms a single-shot poll after each completion (emulated),
// edge mode uses a multishot poll (one CQE per wake-up, Linux 5.13), and
// oneshot (EDGE|ONESHOT too) is a single-shot poll left disarmed until
// modify(). Level re-arms are submitted at the start of the next wait. A
// registration whose poll completes with nothing it asked for (POLLRDHUP,
// which io_uring always adds) waits on a multishot poll instead (see Harvest).
// A pending poll holds a reference to the file, so remove() cancels at once:
// otherwise a closed socket would stay open until the next wait.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "backend.h"
#include "uring_probe.h"

#ifdef IOMUX_HAVE_URING
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <unistd.h>

#include <vector>

#include "fd_table.h"

namespace iomux {

std::string UringSetupReason(int neg_errno) {
  int disabled = 0;
  if (FILE* f = fopen("/proc/sys/kernel/io_uring_disabled", "r")) {
    if (fscanf(f, "%d", &disabled) != 1) disabled = 0;
    fclose(f);
  }
  if (neg_errno == -EPERM && disabled == 2)
    return "io_uring_setup: EPERM: disabled by sysctl kernel.io_uring_disabled=2";
  if (neg_errno == -EPERM && disabled == 1)
    return "io_uring_setup: EPERM: kernel.io_uring_disabled=1 and this process is not in "
           "kernel.io_uring_group";
  if (neg_errno == -EPERM)
    return "io_uring_setup: EPERM: denied, most likely by a seccomp filter (Docker's default "
           "profile blocks io_uring from Docker 25 on)";
  if (neg_errno == -ENOSYS)
    return "io_uring_setup: ENOSYS: the kernel has no io_uring, or a seccomp filter denies it";
  if (neg_errno == -ENOMEM)
    return "io_uring_setup: ENOMEM: RLIMIT_MEMLOCK too low for the ring (kernels before 5.12)";
  return std::string("io_uring_setup: ") + strerror(-neg_errno);
}

bool UringAvailable(std::string* reason) {
  struct io_uring ring;
  int rc = io_uring_queue_init(2, &ring, 0);
  if (rc < 0) {
    *reason = UringSetupReason(rc);
    return false;
  }
  io_uring_queue_exit(&ring);
  return true;
}

namespace {

constexpr uint64_t kInternal = ~0ull;  // user_data of poll_remove requests

unsigned ToPoll(uint32_t interest) {
  unsigned ev = 0;
  if (interest & kReadable) ev |= POLLIN;
  if (interest & kWritable) ev |= POLLOUT;
  return ev;
}

class UringBackend final : public Backend {
 public:
  UringBackend() = default;
  int Init() {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    int rc = io_uring_queue_init_params(256, &ring_, &p);
    if (rc == -EINVAL) {  // an older kernel without those flags
      memset(&p, 0, sizeof p);
      rc = io_uring_queue_init_params(256, &ring_, &p);
    }
    if (rc == 0) ready_ = true;
    return rc;
  }
  ~UringBackend() override {
    if (ready_) io_uring_queue_exit(&ring_);
  }

  int Add(int fd, uint32_t interest, uint32_t mode) override {
    bool stale;
    uint64_t dev, ino;
    int rc = table_.CheckAdd(fd, &stale, &dev, &ino);
    if (rc < 0) return Fail(rc, "io_uring_enter");
    if (stale) Disarm(table_.Get(fd), fd);
    Registration* r = table_.Slot(fd);
    r->registered = true;
    r->dev = dev;
    r->ino = ino;
    r->interest = interest;
    r->mode = mode;
    r->gen = table_.NextGen();
    r->armed = false;
    SetParked(fd, false);
    rc = Arm(fd, r);
    if (rc < 0) {
      r->registered = false;
      return Fail(rc, "io_uring_enter");
    }
    return Submit();
  }

  int Modify(int fd, uint32_t interest, uint32_t mode) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "io_uring_enter");
    Disarm(r, fd);
    r->interest = interest;
    r->mode = mode;
    r->gen = table_.NextGen();
    SetParked(fd, false);
    int rc = Arm(fd, r);
    if (rc < 0) return Fail(rc, "io_uring_enter");
    return Submit();
  }

  int Remove(int fd) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "io_uring_enter");
    Disarm(r, fd);
    r->registered = false;
    SetParked(fd, false);
    return Submit();
  }

  int Wait(int timeout_ms, int32_t* out, int capacity) override {
    Rearm();
    // Submit the re-arms before looking at the completion queue: a level fd
    // that is still ready completes its poll inline here, so it is reported
    // in this wait even when other completions are already waiting (otherwise
    // it would be missing from this batch and only reported in the next).
    if (io_uring_sq_ready(&ring_) > 0) {
      int rc = io_uring_submit(&ring_);
      if (rc < 0 && rc != -EINTR && rc != -EBUSY) return Fail(rc, "io_uring_enter");
    }
    int64_t deadline = timeout_ms > 0 ? MonotonicMs() + timeout_ms : 0;
    for (;;) {
      bool consumed = false;
      int count = Harvest(out, capacity, &consumed);
      // Re-arms are queued only at the start of the next wait (never here):
      // a poll submitted early, with add() or remove(), would complete with
      // the readiness of that moment and report it, stale, in the next wait.
      if (count > 0) return count;
      int left = RemainingMs(timeout_ms, deadline);
      if (consumed && left != 0) {  // only stale or internal CQEs: keep waiting
        Rearm();
        continue;
      }
      if (left == 0) {
        int rc = io_uring_submit(&ring_);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY) return Fail(rc, "io_uring_enter");
        return Harvest(out, capacity, &consumed);
      }
      if (!rearm_.empty()) {
        // Multishot re-arms held back for CQ room (see Rearm): never block without them.
        Rearm();
        int rc = io_uring_submit(&ring_);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY) return Fail(rc, "io_uring_enter");
        continue;
      }
      struct __kernel_timespec ts, *tsp = nullptr;
      if (left > 0) {
        ts.tv_sec = left / 1000;
        ts.tv_nsec = (left % 1000) * 1000000L;
        tsp = &ts;
      }
      struct io_uring_cqe* cqe = nullptr;
      int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
      if (rc == -EINTR) {
        interrupted_++;
        continue;
      }
      if (rc == -ETIME) {
        count = Harvest(out, capacity, &consumed);
        if (count == 0 && RemainingMs(timeout_ms, deadline) != 0) continue;
        return count;
      }
      if (rc < 0 && rc != -EBUSY) return Fail(rc, "io_uring_enter");
    }
  }

  int PollableFd() const override { return ring_.ring_fd; }

 private:
  struct io_uring_sqe* Sqe() {
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  int Submit() {
    int rc = io_uring_submit(&ring_);
    return rc < 0 && rc != -EBUSY ? Fail(rc, "io_uring_enter") : 0;
  }

  int Arm(int fd, Registration* r) {
    struct io_uring_sqe* sqe = Sqe();
    if (sqe == nullptr) return -EBUSY;
    // EDGE|ONESHOT is a single-shot poll: a multishot one would fire again.
    if (Multishot(fd, r))
      io_uring_prep_poll_multishot(sqe, fd, ToPoll(r->interest));
    else
      io_uring_prep_poll_add(sqe, fd, ToPoll(r->interest));
    io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(r->gen) << 32) | static_cast<uint32_t>(fd));
    r->armed = true;
    return 0;
  }

  void Disarm(Registration* r, int fd) {
    if (!r->armed) return;
    struct io_uring_sqe* sqe = Sqe();
    if (sqe == nullptr) return;
    io_uring_prep_poll_remove(sqe, (static_cast<uint64_t>(r->gen) << 32) | static_cast<uint32_t>(fd));
    io_uring_sqe_set_data64(sqe, kInternal);
    r->armed = false;
  }

  // Level-mode polls that fired (and multishot polls the kernel ended) are
  // re-armed at the start of the next wait (one io_uring_enter for all).
  // A multishot poll whose completion finds the CQ full is ended by the
  // kernel (its last CQE goes to the overflow list). Re-arming more of them
  // than the CQ has room for, on fds that stay ready, would end them all
  // again, every wait, for ever (EDGE fds reported on every wait, found with
  // 2,000 ready fds on a 512-entry CQ): those beyond the room wait in rearm_
  // until completions have been taken (a wait returns at once meanwhile: the
  // CQ is not empty), and are armed before the wait blocks.
  void Rearm() {
    if (rearm_.empty()) return;
    int room = static_cast<int>(ring_.cq.ring_entries) - static_cast<int>(io_uring_cq_ready(&ring_));
    if (io_uring_cq_has_overflow(&ring_)) room = 0;
    held_.clear();
    for (int fd : rearm_) {
      Registration* r = table_.Get(fd);
      if (r == nullptr || r->armed) continue;
      if (room <= 0 && Multishot(fd, r)) {
        held_.push_back(fd);
        continue;
      }
      room--;
      Arm(fd, r);
    }
    rearm_.swap(held_);
    held_.clear();
  }

  int Harvest(int32_t* out, int capacity, bool* consumed) {
    batch_++;
    int count = 0;
    struct io_uring_cqe* cqe;
    while (count < capacity && io_uring_peek_cqe(&ring_, &cqe) == 0) {
      uint64_t ud = cqe->user_data;
      int res = cqe->res;
      bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
      io_uring_cqe_seen(&ring_, cqe);
      *consumed = true;
      if (ud == kInternal) continue;
      int fd = static_cast<int>(ud & 0xffffffffu);
      Registration* r = table_.Get(fd);
      if (r == nullptr || r->gen != static_cast<uint32_t>(ud >> 32)) continue;
      uint32_t bits = 0;
      if (res == -ECANCELED) {
        bits = 0;
      } else if (res < 0) {
        bits = kError;
      } else {
        if (res & POLLIN) bits |= kReadable;
        if (res & POLLOUT) bits |= kWritable;
        if (res & POLLERR) bits |= kError;
        if (res & POLLHUP) bits |= kHangup;
        bits = Normalise(bits, r->interest);
      }
      if (!more) r->armed = false;
      if (bits == 0) {
        // Nothing the caller asked for. io_uring adds POLLRDHUP to every
        // poll, so once the peer has shut down writing a single-shot poll
        // without READABLE completes at once, every time it is armed: wait()
        // would spin and a ONESHOT would lose its event. Such a registration
        // is parked on a multishot poll, which completes only on wake-ups,
        // until something it asked for happens. (Not fired: ONESHOT too.)
        if (!more) {
          if (res != -ECANCELED && !Multishot(fd, r)) SetParked(fd, true);
          rearm_.push_back(fd);
        }
        continue;
      }
      if (Parked(fd)) {
        // Back to single-shot polls: they report the readiness of the moment.
        SetParked(fd, false);
        if (more) Disarm(r, fd);
        r->armed = false;
        r->gen = table_.NextGen();  // completions still queued by the multishot are stale
        if (!(r->mode & kOneshot)) rearm_.push_back(fd);
      } else if (!more && !(r->mode & kOneshot)) {
        rearm_.push_back(fd);
      }
      if (static_cast<size_t>(fd) >= stamp_.size()) {
        stamp_.resize(fd + 64, 0);
        pos_.resize(fd + 64, 0);
      }
      if (stamp_[fd] == batch_) {  // a second CQE for this fd: merge
        out[2 * pos_[fd] + 1] |= static_cast<int32_t>(bits);
        continue;
      }
      stamp_[fd] = batch_;
      pos_[fd] = count;
      out[2 * count] = fd;
      out[2 * count + 1] = static_cast<int32_t>(bits);
      count++;
    }
    return count;
  }

  bool Multishot(int fd, const Registration* r) const {
    return ((r->mode & kEdge) && !(r->mode & kOneshot)) || Parked(fd);
  }
  bool Parked(int fd) const { return static_cast<size_t>(fd) < parked_.size() && parked_[fd]; }
  void SetParked(int fd, bool on) {
    if (static_cast<size_t>(fd) >= parked_.size()) {
      if (!on) return;
      parked_.resize(fd + 64, 0);
    }
    parked_[fd] = on;
  }

  struct io_uring ring_;
  bool ready_ = false;
  FdTable table_;
  std::vector<int> rearm_;
  std::vector<int> held_;  // scratch for Rearm
  std::vector<uint8_t> parked_;  // per fd: parked on a multishot poll (see Harvest)
  std::vector<uint32_t> stamp_;
  std::vector<int> pos_;
  uint32_t batch_ = 0;
};

std::unique_ptr<Backend> Create(int* err, std::string* reason) {
  auto b = std::make_unique<UringBackend>();
  int rc = b->Init();
  if (rc < 0) {
    *err = rc;
    *reason = UringSetupReason(rc);
    return nullptr;
  }
  return b;
}
bool Probe(std::string* reason) { return UringAvailable(reason); }

}  // namespace
}  // namespace iomux

#else  // compiled without liburing

namespace iomux {
namespace {
const char kWhy[] =
    "compiled out: liburing was not found by pkg-config when iomux was built (install "
    "liburing-dev and rebuild)";
std::unique_ptr<Backend> Create(int* err, std::string* reason) {
  *err = -ENOSYS;
  *reason = kWhy;
  return nullptr;
}
bool Probe(std::string* reason) {
  *reason = kWhy;
  return false;
}
}  // namespace
std::string UringSetupReason(int) { return kWhy; }
bool UringAvailable(std::string* reason) { return Probe(reason); }
}  // namespace iomux
#endif

namespace iomux {
const BackendInfo kUringInfo = {
    "io_uring", {kEmulated, kNative, kNative, kUnsupported}, Create, Probe};
}  // namespace iomux
