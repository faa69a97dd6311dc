// kqueue(2): macOS and the BSDs; on Linux only when built against libkqueue
// (IOMUX_KQUEUE=libkqueue at build time, see docs/install.md). Read and write
// are two separate filters, so one fd can produce two kevents that are merged
// here into one (fd, events) pair.
//
// Level is the default; edge is EV_CLEAR, oneshot EV_DISPATCH (the filter is
// disabled after it fires; modify() arms it again). modify() deletes the
// filters and adds them again. All the changes of one add/modify/remove go
// to the kernel in one kevent() call with EV_RECEIPT, so each change gets its
// own result.
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__) || defined(IOMUX_LIBKQUEUE)
#include <poll.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#ifdef IOMUX_LIBKQUEUE
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "sock_error.h"

// Newer libkqueue exports this: it waits until the kqueues closed so far are
// really freed (their epoll fd and pipe closed). Weak, so older versions link.
extern "C" void libkqueue_drain_pending_close(void) __attribute__((weak));
#endif

#include "backend.h"
#include "exports.h"
#include "fd_table.h"

namespace iomux {
namespace {

#ifdef IOMUX_LIBKQUEUE
// Socket errors libkqueue consumed (see sock_error.h), per fd, with the
// identity of the file, so that an fd number closed elsewhere and reused
// never inherits one. `kept_count` lets the read/write path skip the lock.
struct KeptError {
  int err;
  dev_t dev;
  ino_t ino;
};
std::mutex kept_mutex;
std::unordered_map<int, KeptError> kept_errors;
std::atomic<size_t> kept_count{0};

// libkqueue returns as the kqueue fd the write end of a private pipe, whose
// read end sits (EPOLLIN|EPOLLHUP) in the epoll set that holds every
// registration; that epoll fd is readable exactly when kevent() has something
// to return, so it is the pollable fd a real kqueue is. It is found through
// /proc: the epoll fd just below kq (libkqueue creates it right before the
// pipe) whose fdinfo watches a file with the pipe's inode for EPOLLIN. (The
// process-wide close monitor also watches that pipe end, EPOLLHUP|EPOLLONESHOT
// only: not that one.) -1 when not found (a different libkqueue).
int FindLibkqueueEpoll(int kq) {
  struct stat st;
  if (fstat(kq, &st) != 0 || !S_ISFIFO(st.st_mode)) return -1;
  char want[40];
  snprintf(want, sizeof want, " ino:%llx ", static_cast<unsigned long long>(st.st_ino));
  for (int fd = kq - 1; fd >= 0 && fd >= kq - 16; fd--) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE* f = fopen(path, "re");
    if (f == nullptr) continue;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != nullptr) {
      int tfd;
      unsigned events;
      if (strncmp(line, "tfd:", 4) != 0 || strstr(line, want) == nullptr) continue;
      if (sscanf(line, "tfd: %d events: %x", &tfd, &events) != 2) continue;
      found = (events & EPOLLIN) != 0 && (events & EPOLLONESHOT) == 0;
    }
    fclose(f);
    if (found) return fd;
  }
  return -1;
}
#endif

constexpr uint32_t kBoth = kReadable | kWritable;

// The registration's generation rides in udata: void* on most systems,
// intptr_t on NetBSD before 10, hence the C-style casts.
using Udata = decltype(((struct kevent*)nullptr)->udata);
inline Udata GenToUdata(uint32_t gen) { return (Udata)(uintptr_t)gen; }
inline uint32_t UdataToGen(Udata u) { return static_cast<uint32_t>((uintptr_t)u); }

// EV_RECEIPT is not everywhere (OpenBSD before 7.1); Submit() copes.
#ifdef EV_RECEIPT
constexpr unsigned short kReceipt = EV_RECEIPT;
#else
constexpr unsigned short kReceipt = 0;
#endif

class KqueueBackend final : public Backend {
 public:
  explicit KqueueBackend(int kq) : kq_(kq) {
#ifdef IOMUX_LIBKQUEUE
    pollable_ = FindLibkqueueEpoll(kq);
#endif
  }
  ~KqueueBackend() override {
#ifdef IOMUX_LIBKQUEUE
    // libkqueue notices the close of its kqueue fd (a pipe's write end) from
    // a monitor thread and frees the rest later; until then it still holds
    // the fd number, and its fork handler closes that number in the child:
    // were the number reused meanwhile (a pipe for child_process.spawn on
    // another thread), the child would lose it. So the pipe end is replaced
    // by /dev/null under the same number (dup3: the pipe closes, the number
    // stays ours), libkqueue is waited for, and only then is it released.
    if (libkqueue_drain_pending_close != nullptr) {
      int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (null_fd >= 0 && dup3(null_fd, kq_, O_CLOEXEC) == kq_) {
        close(null_fd);
        libkqueue_drain_pending_close();
        close(kq_);
        return;
      }
      if (null_fd >= 0) close(null_fd);
    }
#endif
    close(kq_);
  }

  int Add(int fd, uint32_t interest, uint32_t mode) override {
    bool stale;
    uint64_t dev, ino;
    int rc = table_.CheckAdd(fd, &stale, &dev, &ino);
    if (rc < 0) return Fail(rc, "kevent");
    Registration* r = table_.Slot(fd);
    if (stale) {
      // The number was closed and reused without remove(). The kernel has
      // dropped the old knotes on close; libkqueue may still hold its own
      // record of them, and would then treat EV_ADD as a modification.
      Changes ch;
      Delete(&ch, fd, r->interest);
      Submit(&ch);
      r->registered = false;
    }
    uint32_t gen = table_.NextGen();
    Changes ch;
    Arm(&ch, fd, interest, mode, gen);
    rc = Submit(&ch);
    if (rc < 0) {
      Changes undo;
      Delete(&undo, fd, interest);
      Submit(&undo);
      return Fail(rc, "kevent");
    }
    r->registered = true;
    r->interest = interest;
    r->mode = mode;
    r->gen = gen;
    r->dev = dev;
    r->ino = ino;
    r->slot = -1;
    return 0;
  }

  int Modify(int fd, uint32_t interest, uint32_t mode) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "kevent");
    // Delete and add again, in one kevent() call: readiness is evaluated
    // afresh, as with EPOLL_CTL_MOD, and a oneshot filter that fired is
    // armed again. (EV_ADD on an existing knote would keep its old
    // EV_CLEAR/EV_DISPATCH on libkqueue, which also rejects some such
    // modifications of socket filters.)
    Changes ch;
    Delete(&ch, fd, r->interest);
    Arm(&ch, fd, interest, mode, r->gen);
    int rc = Submit(&ch);
    if (rc < 0) {
      // Neither the old nor the new filters are armed now: forget the fd.
      Changes undo;
      Delete(&undo, fd, interest);
      Submit(&undo);
      r->registered = false;
      return Fail(rc, "kevent");
    }
    r->interest = interest;
    r->mode = mode;
    return 0;
  }

  int Remove(int fd) override {
    Registration* r = table_.Get(fd);
    if (r == nullptr) return Fail(-ENOENT, "kevent");
    r->registered = false;
    // Results are ignored: a closed fd has already lost its knotes.
    Changes ch;
    Delete(&ch, fd, r->interest);
    Submit(&ch);
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
    fired_.clear();
    for (int i = 0; i < n; i++) {
      const struct kevent& ev = events_[i];
      if (ev.filter != EVFILT_READ && ev.filter != EVFILT_WRITE) continue;
      int fd = static_cast<int>(ev.ident);
      Registration* r = table_.Get(fd);
      if (r == nullptr || r->gen != UdataToGen(ev.udata)) continue;
      // A registration without READABLE or WRITABLE (ERROR/HANGUP only)
      // rides on an edge-triggered read filter (see Arm): its data arrivals
      // are not reported, only what poll() calls a hang-up or an error.
      const bool hup_only = (r->interest & kBoth) == 0;
      uint32_t bits = hup_only ? 0u : static_cast<uint32_t>(ev.filter == EVFILT_READ ? kReadable : kWritable);
      if (ev.flags & EV_ERROR) bits |= kError;
      if (ev.flags & EV_EOF) bits |= EofBits(fd, ev);
#ifdef IOMUX_LIBKQUEUE
      if ((ev.flags & EV_EOF) && ev.fflags != 0) KeepSocketError(fd, static_cast<int>(ev.fflags));
#endif
      bits = Normalise(bits, r->interest);
      if (bits == 0) continue;
      // Merge with an earlier pair for the same fd in this batch: r->slot
      // is the index of that pair when it belongs to this batch.
      int j = r->slot;
      if (j < 0 || j >= count || out[2 * j] != fd) {
        j = count++;
        r->slot = j;
        out[2 * j] = fd;
        out[2 * j + 1] = 0;
        if ((r->mode & kOneshot) && (hup_only || (r->interest & kBoth) == kBoth)) fired_.push_back(j);
      }
      out[2 * j + 1] |= static_cast<int32_t>(bits);
    }
    // Oneshot with both filters: EV_DISPATCH disabled the filter that fired;
    // disable the other one too, so the whole fd is disarmed until modify(),
    // as with EPOLLONESHOT; a hang-up-only oneshot has no EV_DISPATCH (its
    // filter also fires for data) and is disarmed here once reported. Done
    // after the batch, so that a filter which fired in the same batch is not
    // disabled twice.
    if (!fired_.empty()) {
      Changes ch;
      for (int j : fired_) {
        int fd = out[2 * j];
        uint32_t seen = static_cast<uint32_t>(out[2 * j + 1]);
        Registration* r = table_.Get(fd);
        Udata udata = GenToUdata(r->gen);
        uint32_t filters = Filters(r->interest);
        struct kevent k;
        if ((filters & kReadable) && (!(seen & kReadable) || (r->interest & kBoth) == 0)) {
          EV_SET(&k, fd, EVFILT_READ, EV_DISABLE | kReceipt, 0, 0, udata);
          ch.push_back(k);
        }
        if ((filters & kWritable) && !(seen & kWritable)) {
          EV_SET(&k, fd, EVFILT_WRITE, EV_DISABLE | kReceipt, 0, 0, udata);
          ch.push_back(k);
        }
      }
      Submit(&ch);
    }
    return count;
  }

  // The kqueue fd is readable while events are pending, on macOS and the
  // BSDs; under libkqueue, its epoll fd is (see FindLibkqueueEpoll).
  int PollableFd() const override { return pollable_; }

 private:
  using Changes = std::vector<struct kevent>;

  // EV_EOF says "no more data" (read) or "peer gone" (write), but not
  // whether the connection is only half closed: ask poll() once, so HANGUP
  // means what it means for the poll backend on the same system (EOF events
  // are rare: at most one per filter and connection). A pending socket error
  // comes in fflags; libkqueue reads it with SO_ERROR, which clears it, so
  // poll() may no longer see POLLERR: fflags counts as ERROR too.
  static uint32_t EofBits(int fd, const struct kevent& ev) {
    uint32_t bits = ev.fflags != 0 ? static_cast<uint32_t>(kError) : 0u;
    struct pollfd p = {fd, POLLIN | POLLOUT, 0};
    if (poll(&p, 1, 0) == 1 && !(p.revents & POLLNVAL)) {
      if (p.revents & POLLHUP) bits |= kHangup;
      if (p.revents & POLLERR) bits |= kError;
      return bits;
    }
    return bits | kHangup;
  }

  // The filters behind an interest: READ and/or WRITE; for ERROR/HANGUP
  // only, READ (kqueue reports EOF and errors through a filter only).
  static uint32_t Filters(uint32_t interest) {
    return (interest & kBoth) != 0 ? (interest & kBoth) : static_cast<uint32_t>(kReadable);
  }

  static void Arm(Changes* ch, int fd, uint32_t interest, uint32_t mode, uint32_t gen) {
    unsigned short flags = EV_ADD | EV_ENABLE | kReceipt;
    if ((interest & kBoth) == 0) {
      // ERROR/HANGUP only: edge-triggered whatever the mode, so that unread
      // data (not asked for) cannot make every wait return at once; oneshot
      // is done in Wait. A hang-up is thus reported once per change.
      flags |= EV_CLEAR;
    } else {
      if (mode & kEdge) flags |= EV_CLEAR;
      if (mode & kOneshot) flags |= EV_DISPATCH;
    }
    Udata udata = GenToUdata(gen);
    uint32_t filters = Filters(interest);
    struct kevent k;
    if (filters & kReadable) {
      EV_SET(&k, fd, EVFILT_READ, flags, 0, 0, udata);
      ch->push_back(k);
    }
    if (filters & kWritable) {
      EV_SET(&k, fd, EVFILT_WRITE, flags, 0, 0, udata);
      ch->push_back(k);
    }
  }

  static void Delete(Changes* ch, int fd, uint32_t interest) {
    uint32_t filters = Filters(interest);
    struct kevent k;
    if (filters & kReadable) {
      EV_SET(&k, fd, EVFILT_READ, EV_DELETE | kReceipt, 0, 0, GenToUdata(0));
      ch->push_back(k);
    }
    if (filters & kWritable) {
      EV_SET(&k, fd, EVFILT_WRITE, EV_DELETE | kReceipt, 0, 0, GenToUdata(0));
      ch->push_back(k);
    }
  }

  // Applies the changes. With EV_RECEIPT they go in one kevent() call and
  // every change comes back as an EV_ERROR entry whose data is its errno
  // (0: done); the event list is exactly that long, so no pending event is
  // consumed here. Without EV_RECEIPT (old OpenBSD), one call per change.
  // Returns the first failure of an EV_ADD/EV_ENABLE/EV_DISABLE, or 0;
  // failed EV_DELETEs are ignored (the filter was already gone).
  int Submit(Changes* ch) {
    int rc = 0;
#ifdef EV_RECEIPT
    if (ch->empty()) return 0;
    receipts_.resize(ch->size());
    const struct timespec zero = {0, 0};
    int n;
    do {
      n = kevent(kq_, ch->data(), static_cast<int>(ch->size()), receipts_.data(),
                 static_cast<int>(receipts_.size()), &zero);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    for (int i = 0; i < n && rc == 0; i++) {
      const struct kevent& k = receipts_[i];
      if (!(k.flags & EV_ERROR) || k.data == 0) continue;
      // Receipts come back in changelist order, one per change.
      if (!((*ch)[i].flags & EV_DELETE)) rc = -static_cast<int>(k.data);
    }
#else
    for (const struct kevent& c : *ch) {
      if (kevent(kq_, &c, 1, nullptr, 0, nullptr) < 0 && rc == 0 && !(c.flags & EV_DELETE)) rc = -errno;
    }
#endif
    return rc;
  }

  int kq_;
  int pollable_ = kq_;
  FdTable table_;
  std::vector<struct kevent> events_;
  std::vector<struct kevent> receipts_;
  std::vector<int> fired_;  // pairs in this batch of oneshot R|W or hang-up-only registrations
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

#ifdef IOMUX_LIBKQUEUE
void KeepSocketError(int fd, int err) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  std::lock_guard<std::mutex> lock(kept_mutex);
  auto it = kept_errors.find(fd);
  if (it != kept_errors.end() && it->second.dev == st.st_dev && it->second.ino == st.st_ino) return;
  kept_errors[fd] = KeptError{err, st.st_dev, st.st_ino};
  kept_count.store(kept_errors.size(), std::memory_order_relaxed);
}

int TakeSocketError(int fd, bool reading) {
  if (kept_count.load(std::memory_order_relaxed) == 0) return 0;
  struct stat st;
  bool have = fstat(fd, &st) == 0;
  std::lock_guard<std::mutex> lock(kept_mutex);
  auto it = kept_errors.find(fd);
  if (it == kept_errors.end()) return 0;
  if (reading && it->second.err == EPIPE && have && it->second.dev == st.st_dev && it->second.ino == st.st_ino)
    return 0;
  int err = have && it->second.dev == st.st_dev && it->second.ino == st.st_ino ? it->second.err : 0;
  kept_errors.erase(it);
  kept_count.store(kept_errors.size(), std::memory_order_relaxed);
  return err;
}

void ForgetSocketError(int fd) {
  if (kept_count.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard<std::mutex> lock(kept_mutex);
  kept_errors.erase(fd);
  kept_count.store(kept_errors.size(), std::memory_order_relaxed);
}
#endif

const BackendInfo kKqueueInfo = {
    "kqueue", {kNative, kNative, kNative, kUnsupported}, Create, Probe};

// libkqueue opens two process-wide fds (its close-monitor's epoll set and an
// eventfd) on the first kqueue() and keeps them: do that when the addon
// loads, so that they are not counted against the first Poller (fd
// accounting in tests, leak checks). Nothing to do on a real kqueue.
void InitKqueue(Napi::Env, Napi::Object) {
#ifdef IOMUX_LIBKQUEUE
  static std::once_flag once;
  std::call_once(once, [] {
    int kq = kqueue();
    if (kq < 0) return;
    close(kq);
    if (libkqueue_drain_pending_close != nullptr) libkqueue_drain_pending_close();
  });
#endif
}

}  // namespace iomux

#else  // no kqueue on this platform

#include <cerrno>

#include "backend.h"
#include "exports.h"

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
void InitKqueue(Napi::Env, Napi::Object) {}
}  // namespace iomux
#endif
