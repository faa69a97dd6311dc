// poll(2): an array of pollfd kept here and handed to the kernel whole on
// every wait. No FD_SETSIZE limit, but the cost still grows with n.
#include <poll.h>

#include <cerrno>
#include <vector>

#include "backend.h"
#include "fd_table.h"

namespace iomux {
namespace {

short ToPoll(uint32_t interest) {
  short ev = 0;
  if (interest & kReadable) ev |= POLLIN;
  if (interest & kWritable) ev |= POLLOUT;
  return ev;
}

class PollBackend final : public Backend {
 public:
  int Add(int fd, uint32_t interest, uint32_t mode) override {
    bool stale;
    uint64_t dev, ino;
    int rc = table_.CheckAdd(fd, &stale, &dev, &ino);
    if (rc < 0) return Fail(rc, "poll");
    if (stale) Forget(fd);
    Registration* r = table_.Slot(fd);
    r->registered = true;
    r->dev = dev;
    r->ino = ino;
    r->slot = static_cast<int>(pfds_.size());
    pfds_.push_back(pollfd{fd, 0, 0});
    Set(r, interest, mode);
    return 0;
  }

  int Modify(int fd, uint32_t interest, uint32_t mode) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "poll");
    Set(r, interest, mode);
    return 0;
  }

  int Remove(int fd) override {
    if (table_.Get(fd) == nullptr) return Fail(-ENOENT, "poll");
    Forget(fd);
    return 0;
  }

  int Wait(int timeout_ms, int32_t* out, int capacity) override {
    int64_t deadline = timeout_ms > 0 ? MonotonicMs() + timeout_ms : 0;
    int n;
    for (;;) {
      n = poll(pfds_.data(), pfds_.size(), RemainingMs(timeout_ms, deadline));
      if (n >= 0) break;
      if (errno != EINTR) return Fail(-errno, "poll");
      interrupted_++;
    }
    int count = 0;
    for (size_t i = 0; i < pfds_.size() && count < capacity && n > 0; i++) {
      pollfd& p = pfds_[i];
      if (p.revents == 0 || p.fd < 0) continue;
      Registration* r = table_.Get(p.fd);
      uint32_t bits = 0;
      if (p.revents & POLLIN) bits |= kReadable;
      if (p.revents & POLLOUT) bits |= kWritable;
      if (p.revents & POLLERR) bits |= kError;
      if (p.revents & POLLHUP) bits |= kHangup;
      bits = Normalise(bits, r->interest);
      if (p.revents & POLLNVAL) bits = kError;  // closed without remove()
      if (bits == 0) continue;
      out[2 * count] = p.fd;
      if (r->mode & kOneshot) {
        r->armed = false;
        p.fd = ~p.fd;  // negative fd: poll skips the entry until modify()
      }
      out[2 * count + 1] = static_cast<int32_t>(bits);
      count++;
    }
    return count;
  }

 private:
  void Set(Registration* r, uint32_t interest, uint32_t mode) {
    r->interest = interest;
    r->mode = mode;
    r->armed = true;
    pollfd& p = pfds_[r->slot];
    if (p.fd < 0) p.fd = ~p.fd;
    p.events = ToPoll(interest);
    p.revents = 0;
  }

  void Forget(int fd) {
    Registration* r = table_.Get(fd);
    int slot = r->slot;
    pfds_[slot] = pfds_.back();
    int moved = pfds_[slot].fd < 0 ? ~pfds_[slot].fd : pfds_[slot].fd;
    table_.Slot(moved)->slot = slot;
    pfds_.pop_back();
    r->registered = false;
    r->slot = -1;
  }

  FdTable table_;
  std::vector<pollfd> pfds_;
};

std::unique_ptr<Backend> Create(int*, std::string*) {
  return std::make_unique<PollBackend>();
}
bool Probe(std::string*) { return true; }

}  // namespace

const BackendInfo kPollInfo = {
    "poll", {kNative, kUnsupported, kEmulated, kUnsupported}, Create, Probe};

}  // namespace iomux
