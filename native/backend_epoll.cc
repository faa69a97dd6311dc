// epoll(7): the interest set lives in the kernel, so a wait costs O(ready),
// not O(registered). Level, edge (EPOLLET), oneshot (EPOLLONESHOT) and
// exclusive (EPOLLEXCLUSIVE, Linux 4.5) are all native.
#ifdef __linux__
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "backend.h"
#include "fd_table.h"

namespace iomux {
namespace {

uint32_t ToEpoll(uint32_t interest, uint32_t mode) {
  uint32_t ev = 0;
  if (interest & kReadable) ev |= EPOLLIN;
  if (interest & kWritable) ev |= EPOLLOUT;
  if (mode & kEdge) ev |= EPOLLET;
  if (mode & kOneshot) ev |= EPOLLONESHOT;
  if (mode & kExclusive) ev |= EPOLLEXCLUSIVE;
  return ev;
}

class EpollBackend final : public Backend {
 public:
  explicit EpollBackend(int epfd) : epfd_(epfd) {}
  ~EpollBackend() override { close(epfd_); }

  int Add(int fd, uint32_t interest, uint32_t mode) override {
    bool stale;
    uint64_t dev, ino;
    int rc = table_.CheckAdd(fd, &stale, &dev, &ino);
    if (rc < 0) return Fail(rc, "epoll_ctl");
    Registration* r = table_.Slot(fd);
    uint32_t gen = table_.NextGen();
    struct epoll_event ev;
    ev.events = ToEpoll(interest, mode);
    ev.data.u64 = (static_cast<uint64_t>(gen) << 32) | static_cast<uint32_t>(fd);
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return Fail(-errno, "epoll_ctl");
    r->registered = true;
    r->interest = interest;
    r->mode = mode;
    r->gen = gen;
    r->dev = dev;
    r->ino = ino;
    return 0;
  }

  int Modify(int fd, uint32_t interest, uint32_t mode) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "epoll_ctl");
    struct epoll_event ev;
    ev.events = ToEpoll(interest, mode);
    ev.data.u64 = (static_cast<uint64_t>(r->gen) << 32) | static_cast<uint32_t>(fd);
    if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) return Fail(-errno, "epoll_ctl");
    r->interest = interest;
    r->mode = mode;
    return 0;
  }

  int Remove(int fd) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "epoll_ctl");
    r->registered = false;
    if (epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr) != 0) {
      // Closed already (EBADF), or the number now names another file the
      // kernel never saw (ENOENT): the registration is gone either way.
      if (errno != EBADF && errno != ENOENT) return Fail(-errno, "epoll_ctl");
    }
    return 0;
  }

  int Wait(int timeout_ms, int32_t* out, int capacity) override {
    if (events_.size() < static_cast<size_t>(capacity)) events_.resize(capacity);
    int64_t deadline = timeout_ms > 0 ? MonotonicMs() + timeout_ms : 0;
    int n;
    for (;;) {
      n = epoll_wait(epfd_, events_.data(), capacity, RemainingMs(timeout_ms, deadline));
      if (n >= 0) break;
      if (errno != EINTR) return Fail(-errno, "epoll_wait");
      interrupted_++;
    }
    int count = 0;
    for (int i = 0; i < n; i++) {
      int fd = static_cast<int>(events_[i].data.u64 & 0xffffffffu);
      uint32_t gen = static_cast<uint32_t>(events_[i].data.u64 >> 32);
      Registration* r = table_.Get(fd);
      // An event for a file whose fd number was closed and reused (epoll
      // keys registrations by file, so a dup'd file lives on): drop it.
      if (r == nullptr || r->gen != gen) continue;
      uint32_t e = events_[i].events, bits = 0;
      if (e & EPOLLIN) bits |= kReadable;
      if (e & EPOLLOUT) bits |= kWritable;
      if (e & EPOLLERR) bits |= kError;
      if (e & EPOLLHUP) bits |= kHangup;
      out[2 * count] = fd;
      out[2 * count + 1] = static_cast<int32_t>(Normalise(bits, r->interest));
      count++;
    }
    return count;
  }

  int PollableFd() const override { return epfd_; }

 private:
  int epfd_;
  FdTable table_;
  std::vector<epoll_event> events_;
};

std::unique_ptr<Backend> Create(int* err, std::string* reason) {
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    *err = -errno;
    *reason = "epoll_create1 failed";
    return nullptr;
  }
  return std::make_unique<EpollBackend>(epfd);
}
bool Probe(std::string*) { return true; }

}  // namespace

const BackendInfo kEpollInfo = {
    "epoll", {kNative, kNative, kNative, kNative}, Create, Probe};

}  // namespace iomux

#else  // !__linux__

#include <cerrno>

#include "backend.h"

namespace iomux {
namespace {
std::unique_ptr<Backend> Create(int* err, std::string* reason) {
  *err = -ENOSYS;
  *reason = "epoll exists only on Linux";
  return nullptr;
}
bool Probe(std::string* reason) {
  *reason = "epoll exists only on Linux";
  return false;
}
}  // namespace
const BackendInfo kEpollInfo = {
    "epoll", {kUnsupported, kUnsupported, kUnsupported, kUnsupported}, Create, Probe};
}  // namespace iomux
#endif
