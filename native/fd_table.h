// Per-fd registration bookkeeping for the backends that keep their own
// interest set (select, poll, io_uring) and for epoll's stale-fd checks.
#pragma once

#include <cstdint>
#include <vector>

#include "backend.h"

namespace iomux {

struct Registration {
  bool registered = false;
  bool armed = false;       // oneshot: false once it has fired
  uint32_t interest = 0;
  uint32_t mode = 0;
  uint32_t gen = 0;         // bumped on every add/modify: stale events are dropped
  uint64_t dev = 0, ino = 0;
  int slot = -1;            // backend-private index (e.g. pollfd position)
};

class FdTable {
 public:
  Registration* Get(int fd) {
    if (fd < 0 || static_cast<size_t>(fd) >= regs_.size()) return nullptr;
    Registration* r = &regs_[fd];
    return r->registered ? r : nullptr;
  }
  Registration* Slot(int fd) {
    if (static_cast<size_t>(fd) >= regs_.size()) regs_.resize(fd + 64);
    return &regs_[fd];
  }
  uint32_t NextGen() { return ++gen_ ? gen_ : ++gen_; }

  // Shared add-time check: -EEXIST when the fd is registered and still the
  // same open file; when the number now names another file (closed and
  // reused without remove()), the old registration is stale and is dropped:
  // *stale is set so the backend can release kernel state for it.
  int CheckAdd(int fd, bool* stale, uint64_t* dev, uint64_t* ino) {
    *stale = false;
    int rc = FileIdentity(fd, dev, ino);
    if (rc < 0) return rc;
    Registration* r = Get(fd);
    if (r == nullptr) return 0;
    if (r->dev == *dev && r->ino == *ino) return -EEXIST;
    *stale = true;
    return 0;
  }

 private:
  std::vector<Registration> regs_;
  uint32_t gen_ = 0;
};

// ERROR and HANGUP mean a read or write will not block (it returns the
// error or EOF), so they also raise the readable/writable bits the caller
// asked for. This is what makes select (which can only say "readable")
// agree with the others.
inline uint32_t Normalise(uint32_t bits, uint32_t interest) {
  if (bits & (kError | kHangup)) bits |= interest & (kReadable | kWritable);
  return bits & (interest | kError | kHangup);
}

}  // namespace iomux
