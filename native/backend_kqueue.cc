// kqueue(2): macOS and the BSDs; on Linux only when built against libkqueue
// (IOMUX_KQUEUE=libkqueue at build time, see README). Read and write are two
// separate filters, so one fd can produce two kevents that are merged here.
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__) || defined(IOMUX_LIBKQUEUE)
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "backend.h"
#include "fd_table.h"

namespace iomux {
namespace {

class KqueueBackend final : public Backend {
 public:
  explicit KqueueBackend(int kq) : kq_(kq) {}
  ~KqueueBackend() override { close(kq_); }

  int Add(int fd, uint32_t interest, uint32_t mode) override {
    bool stale;
    uint64_t dev, ino;
    int rc = table_.CheckAdd(fd, &stale, &dev, &ino);
    if (rc < 0) return Fail(rc, "kevent");
    Registration* r = table_.Slot(fd);
    uint32_t gen = table_.NextGen();
    rc = Apply(fd, 0, interest, mode, gen);
    if (rc < 0) return rc;
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
    if (r == nullptr) return Fail(-ENOENT, "kevent");
    int rc = Apply(fd, r->interest, interest, mode, r->gen);
    if (rc < 0) return rc;
    r->interest = interest;
    r->mode = mode;
    return 0;
  }

  int Remove(int fd) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "kevent");
    r->registered = false;
    // Errors are ignored: a closed fd has already lost its knotes.
    struct kevent ch;
    if (r->interest & kReadable) {
      EV_SET(&ch, fd, EVFILT_READ, EV_DELETE, 0, 0, nullptr);
      kevent(kq_, &ch, 1, nullptr, 0, nullptr);
    }
    if (r->interest & kWritable) {
      EV_SET(&ch, fd, EVFILT_WRITE, EV_DELETE, 0, 0, nullptr);
      kevent(kq_, &ch, 1, nullptr, 0, nullptr);
    }
    return 0;
  }

  int Wait(int timeout_ms, int32_t* out, int capacity) override {
    if (events_.size() < static_cast<size_t>(capacity)) events_.resize(capacity);
    int64_t deadline = timeout_ms > 0 ? MonotonicMs() + timeout_ms : 0;
    int n;
    for (;;) {
      int left = RemainingMs(timeout_ms, deadline);
      struct timespec ts, *tsp = nullptr;
      if (left >= 0) {
        ts.tv_sec = left / 1000;
        ts.tv_nsec = (left % 1000) * 1000000L;
        tsp = &ts;
      }
      n = kevent(kq_, nullptr, 0, events_.data(), capacity, tsp);
      if (n >= 0) break;
      if (errno != EINTR) return Fail(-errno, "kevent");
      interrupted_++;
    }
    int count = 0;
    for (int i = 0; i < n; i++) {
      const struct kevent& ev = events_[i];
      int fd = static_cast<int>(ev.ident);
      Registration* r = table_.Get(fd);
      if (r == nullptr || r->gen != static_cast<uint32_t>(reinterpret_cast<uintptr_t>(ev.udata))) continue;
      uint32_t bits = 0;
      if (ev.flags & EV_ERROR) bits |= kError;
      if (ev.filter == EVFILT_READ) bits |= kReadable;
      if (ev.filter == EVFILT_WRITE) bits |= kWritable;
      if (ev.flags & EV_EOF) bits |= kHangup;
      if ((ev.flags & EV_EOF) && ev.fflags != 0) bits |= kError;
      // Merge with an earlier pair for the same fd in this batch.
      int j = 0;
      while (j < count && out[2 * j] != fd) j++;
      if (j == count) {
        out[2 * count] = fd;
        out[2 * count + 1] = 0;
        count++;
      }
      out[2 * j + 1] |= static_cast<int32_t>(Normalise(bits, r->interest));
      if ((r->mode & kOneshot) && r->interest == (kReadable | kWritable)) {
        // EV_DISPATCH disabled the filter that fired; disable its sibling
        // too so the whole fd is disarmed, as with EPOLLONESHOT.
        struct kevent ch;
        EV_SET(&ch, fd, ev.filter == EVFILT_READ ? EVFILT_WRITE : EVFILT_READ, EV_DISABLE, 0, 0,
               ev.udata);
        kevent(kq_, &ch, 1, nullptr, 0, nullptr);
      }
    }
    return count;
  }

  int PollableFd() const override { return kq_; }

 private:
  int Apply(int fd, uint32_t old_interest, uint32_t interest, uint32_t mode, uint32_t gen) {
    struct kevent ch[2];
    int nch = 0;
    unsigned short flags = EV_ADD | EV_ENABLE;
    if (mode & kEdge) flags |= EV_CLEAR;
    if (mode & kOneshot) flags |= EV_DISPATCH;
    void* udata = reinterpret_cast<void*>(static_cast<uintptr_t>(gen));
    const uint32_t bits[2] = {kReadable, kWritable};
    const short filters[2] = {EVFILT_READ, EVFILT_WRITE};
    for (int i = 0; i < 2; i++) {
      if (interest & bits[i]) {
        EV_SET(&ch[nch++], fd, filters[i], flags, 0, 0, udata);
      } else if (old_interest & bits[i]) {
        struct kevent del;
        EV_SET(&del, fd, filters[i], EV_DELETE, 0, 0, nullptr);
        kevent(kq_, &del, 1, nullptr, 0, nullptr);
      }
    }
    if (nch > 0 && kevent(kq_, ch, nch, nullptr, 0, nullptr) < 0) return Fail(-errno, "kevent");
    return 0;
  }

  int kq_;
  FdTable table_;
  std::vector<struct kevent> events_;
};

std::unique_ptr<Backend> Create(int* err, std::string* reason) {
  int kq = kqueue();
  if (kq < 0) {
    *err = -errno;
    *reason = "kqueue() failed";
    return nullptr;
  }
  return std::make_unique<KqueueBackend>(kq);
}
bool Probe(std::string*) { return true; }

}  // namespace

const BackendInfo kKqueueInfo = {
    "kqueue", {kNative, kNative, kNative, kUnsupported}, Create, Probe};

}  // namespace iomux

#else  // no kqueue on this platform

#include <cerrno>

#include "backend.h"

namespace iomux {
namespace {
const char kWhy[] =
    "kqueue exists on macOS and the BSDs; on Linux rebuild with IOMUX_KQUEUE=libkqueue "
    "and libkqueue installed";
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
const BackendInfo kKqueueInfo = {
    "kqueue", {kNative, kNative, kNative, kUnsupported}, Create, Probe};
}  // namespace iomux
#endif
