// select(2): the interest set is kept here and copied into fd_sets on every
// wait, which is why its cost grows with the number of registered fds and
// why it cannot see an fd >= FD_SETSIZE at all.
#include <fcntl.h>
#include <sys/select.h>

#include <cerrno>
#include <vector>

#include "backend.h"
#include "fd_table.h"

namespace iomux {
namespace {

class SelectBackend final : public Backend {
 public:
  int Add(int fd, uint32_t interest, uint32_t mode) override {
    if (fd < 0 || fd >= FD_SETSIZE) return Fail(-EINVAL, "select");
    bool stale;
    uint64_t dev, ino;
    int rc = table_.CheckAdd(fd, &stale, &dev, &ino);
    if (rc < 0) return Fail(rc, "select");
    if (stale) Forget(fd);
    Registration* r = table_.Slot(fd);
    r->registered = true;
    r->dev = dev;
    r->ino = ino;
    r->slot = static_cast<int>(fds_.size());
    fds_.push_back(fd);
    Set(r, interest, mode);
    return 0;
  }

  int Modify(int fd, uint32_t interest, uint32_t mode) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "select");
    Set(r, interest, mode);
    return 0;
  }

  int Remove(int fd) override {
    if (table_.Get(fd) == nullptr) return Fail(-ENOENT, "select");
    Forget(fd);
    return 0;
  }

  int Wait(int timeout_ms, int32_t* out, int capacity) override {
    int64_t deadline = timeout_ms > 0 ? MonotonicMs() + timeout_ms : 0;
    for (;;) {
      fd_set rd, wr;
      FD_ZERO(&rd);
      FD_ZERO(&wr);
      int maxfd = -1;
      for (int fd : fds_) {
        Registration* r = table_.Get(fd);
        if (!r->armed) continue;
        if (r->interest & kReadable) FD_SET(fd, &rd);
        if (r->interest & kWritable) FD_SET(fd, &wr);
        // An fd with no interest still takes part so that a closed fd is
        // noticed (EBADF) the way poll notices it (POLLNVAL).
        if ((r->interest & (kReadable | kWritable)) == 0) FD_SET(fd, &rd);
        if (fd > maxfd) maxfd = fd;
      }
      int left = RemainingMs(timeout_ms, deadline);
      struct timeval tv, *tvp = nullptr;
      if (left >= 0) {
        tv.tv_sec = left / 1000;
        tv.tv_usec = (left % 1000) * 1000;
        tvp = &tv;
      }
      int n = select(maxfd + 1, &rd, &wr, nullptr, tvp);
      if (n < 0 && errno == EINTR) {
        interrupted_++;
        continue;
      }
      if (n < 0 && errno == EBADF) return ReportClosed(out, capacity);
      if (n < 0) return Fail(-errno, "select");
      int count = 0;
      for (size_t i = 0; i < fds_.size() && count < capacity && n > 0; i++) {
        int fd = fds_[i];
        Registration* r = table_.Get(fd);
        if (!r->armed) continue;
        uint32_t bits = 0;
        if (FD_ISSET(fd, &rd)) bits |= kReadable;
        if (FD_ISSET(fd, &wr)) bits |= kWritable;
        if (bits == 0) continue;
        bits &= r->interest;
        if (bits == 0) continue;  // readable while only registered for errors
        if (r->mode & kOneshot) r->armed = false;
        out[2 * count] = fd;
        out[2 * count + 1] = static_cast<int32_t>(bits);
        count++;
      }
      return count;
    }
  }

 private:
  void Set(Registration* r, uint32_t interest, uint32_t mode) {
    r->interest = interest;
    r->mode = mode;
    r->armed = true;
  }

  void Forget(int fd) {
    Registration* r = table_.Get(fd);
    int slot = r->slot;
    int last = fds_.back();
    fds_[slot] = last;
    table_.Slot(last)->slot = slot;
    fds_.pop_back();
    r->registered = false;
    r->slot = -1;
  }

  // select fails the whole call with EBADF when one fd in the set is
  // closed; report each closed fd as ERROR, as poll does with POLLNVAL.
  int ReportClosed(int32_t* out, int capacity) {
    int count = 0;
    for (size_t i = 0; i < fds_.size() && count < capacity; i++) {
      int fd = fds_[i];
      if (!table_.Get(fd)->armed) continue;
      if (fcntl(fd, F_GETFD) >= 0) continue;
      out[2 * count] = fd;
      out[2 * count + 1] = kError;
      count++;
    }
    return count;
  }

  FdTable table_;
  std::vector<int> fds_;
};

std::unique_ptr<Backend> Create(int*, std::string*) {
  return std::make_unique<SelectBackend>();
}
bool Probe(std::string*) { return true; }

}  // namespace

const BackendInfo kSelectInfo = {
    "select", {kNative, kUnsupported, kEmulated, kUnsupported}, Create, Probe};

}  // namespace iomux
