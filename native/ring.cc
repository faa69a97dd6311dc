// Ring: io_uring as a completion engine (lib/ring.ts is the typed surface).
//
// JS queues operations (each call fills one SQE, no syscall); submit() or
// submitAndWait() hands them all to the kernel in one io_uring_enter, and the
// completions are copied into a JS Int32Array of (userData, res, flags,
// bufferId) tuples. Received bytes land in a provided buffer ring whose memory
// is an external ArrayBuffer, so JS reads them in place and hands each buffer
// back with returnBuffer(id).
//
// user_data layout (64 bits): the low 32 bits are the caller's userData; bits
// 32..62 hold 1 + the slot of the JS buffer a send keeps alive (0: none); bit
// 63 marks requests the Ring makes for itself, whose CQEs never reach JS.
#include <cerrno>
#include <cstring>
#include <string>

#include "exports.h"
#include "js_util.h"
#include "uring_probe.h"

#ifdef IOMUX_HAVE_URING
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

namespace iomux {
int64_t MonotonicMs();  // registry.cc

namespace {

constexpr uint64_t kInternal = 1ull << 63;
constexpr unsigned kGroup = 0;  // the one buffer group of a Ring

// Counters: stats(Float64Array) copies them out in this order.
enum Stat {
  kEnters,          // io_uring_enter calls, whatever their reason
  kSubmitted,       // SQEs the kernel consumed
  kReaped,          // CQEs handed to JS
  kWaits,           // enters that asked to wait (GETEVENTS with min_complete > 0)
  kSqFull,          // times an op found the SQ full and submitted early
  kOverflowFlushes, // enters made only to move overflowed CQEs into the CQ
  kNoBuffers,       // CQEs with -ENOBUFS (the buffer ring ran dry)
  kLost,            // -EBADR: the kernel dropped CQEs (no memory for the overflow list)
  kStatCount
};

// Page-aligned memory shared by the Ring and the ArrayBuffer that exposes it:
// freed when both have let go (the kernel may write into it until the ring
// is torn down; JS may read it until the ArrayBuffer is collected).
struct SharedPages {
  void* base;
  size_t len;
  int refs;
};

void ReleasePages(SharedPages* p) {
  if (p != nullptr && --p->refs == 0) {
    munmap(p->base, p->len);
    delete p;
  }
}

size_t PageRound(size_t n) {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

const char* FlagName(unsigned bit) {
  switch (bit) {
    case IORING_SETUP_SUBMIT_ALL: return "SUBMIT_ALL";
    case IORING_SETUP_CQSIZE: return "CQSIZE";
    case IORING_SETUP_CLAMP: return "CLAMP";
    case IORING_SETUP_COOP_TASKRUN: return "COOP_TASKRUN";
    case IORING_SETUP_SINGLE_ISSUER: return "SINGLE_ISSUER";
    default: return nullptr;
  }
}

class NativeRing : public Napi::ObjectWrap<NativeRing> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeRing",
                       {
                           InstanceMethod<&NativeRing::Init>("init"),
                           InstanceMethod<&NativeRing::Reason>("reason"),
                           InstanceMethod<&NativeRing::Info>("info"),
                           InstanceMethod<&NativeRing::Buffers>("buffers"),
                           InstanceMethod<&NativeRing::Accept>("accept"),
                           InstanceMethod<&NativeRing::Recv>("recv"),
                           InstanceMethod<&NativeRing::Send>("send"),
                           InstanceMethod<&NativeRing::CloseFd>("closeFd"),
                           InstanceMethod<&NativeRing::Shutdown>("shutdown"),
                           InstanceMethod<&NativeRing::Cancel>("cancel"),
                           InstanceMethod<&NativeRing::CancelFd>("cancelFd"),
                           InstanceMethod<&NativeRing::Timeout>("timeout"),
                           InstanceMethod<&NativeRing::Poll>("poll"),
                           InstanceMethod<&NativeRing::Nop>("nop"),
                           InstanceMethod<&NativeRing::Submit>("submit"),
                           InstanceMethod<&NativeRing::SubmitAndWait>("submitAndWait"),
                           InstanceMethod<&NativeRing::Reap>("reap"),
                           InstanceMethod<&NativeRing::ReturnBuffer>("returnBuffer"),
                           InstanceMethod<&NativeRing::BuffersFree>("buffersFree"),
                           InstanceMethod<&NativeRing::Pending>("pending"),
                           InstanceMethod<&NativeRing::Stats>("stats"),
                           InstanceMethod<&NativeRing::Close>("close"),
                       });
  }

  explicit NativeRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRing>(info) {}
  ~NativeRing() override { Teardown(); }

 private:
  // init(entries, cqEntries, bufCount, bufSize, completions: Int32Array, extraFlags)
  // 0 or -errno; reason() explains a failure.
  Napi::Value Init(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    env_ = env;
    if (ready_) return Num(env, -EEXIST);
    unsigned entries = static_cast<unsigned>(Int(info, 0, 256));
    unsigned cq_entries = static_cast<unsigned>(Int(info, 1, 0));
    unsigned buf_count = static_cast<unsigned>(Int(info, 2, 0));
    unsigned buf_size = static_cast<unsigned>(Int(info, 3, 0));
    unsigned extra = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().Uint32Value() : 0;
    uint8_t* data;
    size_t len;
    if (!info[4].IsTypedArray() || !GetBytes(info[4], &data, &len) || len < 16) {
      reason_ = "completions must be an Int32Array of at least 4 elements";
      return Num(env, -EINVAL);
    }
    if (buf_count != 0 && (buf_count > 32768 || (buf_count & (buf_count - 1)) != 0 || buf_size == 0)) {
      reason_ = "the buffer count must be a power of two up to 32768, with a non-zero size";
      return Num(env, -EINVAL);
    }
    out_ = reinterpret_cast<int32_t*>(data);
    cap_ = static_cast<int>(len / (4 * sizeof(int32_t)));
    completions_ = Napi::Persistent(info[4].As<Napi::Object>());

    int rc = Setup(entries, cq_entries, extra);
    if (rc < 0) {
      if (reason_.empty()) reason_ = UringSetupReason(rc);
      return Num(env, rc);
    }
    if (buf_count > 0) {
      rc = SetupBuffers(env, buf_count, buf_size);
      if (rc < 0) {
        Teardown();
        return Num(env, rc);
      }
    }
    timespecs_.assign(ring_.sq.ring_entries, __kernel_timespec{});
    return Num(env, 0);
  }

  // Asks for SUBMIT_ALL (plus CQSIZE/CLAMP and any extra bits); a flag the
  // kernel does not know gives -EINVAL, and is dropped before trying again,
  // extra bits first.
  int Setup(unsigned entries, unsigned cq_entries, unsigned extra) {
    unsigned base = IORING_SETUP_CLAMP | (cq_entries ? IORING_SETUP_CQSIZE : 0);
    unsigned optional[34];
    int n = 0;
    for (unsigned bit = 1; bit != 0; bit <<= 1)
      if (extra & bit) optional[n++] = bit;
    optional[n++] = IORING_SETUP_SUBMIT_ALL;
    unsigned wanted = base | extra | IORING_SETUP_SUBMIT_ALL;
    for (int drop = 0;; drop++) {
      struct io_uring_params p;
      memset(&p, 0, sizeof p);
      p.flags = wanted;
      p.cq_entries = cq_entries;
      int rc = io_uring_queue_init_params(entries, &ring_, &p);
      if (rc == 0) {
        flags_ = wanted;
        features_ = p.features;
        break;
      }
      if (rc != -EINVAL || drop == n) return rc;
      wanted &= ~optional[drop];
      dropped_ |= optional[drop];
    }
    ready_ = true;
    if (!(features_ & IORING_FEAT_EXT_ARG) || !(features_ & IORING_FEAT_NODROP)) {
      reason_ = "the kernel's io_uring lacks IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP (Linux 5.11+; "
                "multishot accept and recv need 6.0+)";
      Teardown();
      return -EOPNOTSUPP;
    }
    return 0;
  }

  int SetupBuffers(Napi::Env env, unsigned count, unsigned size) {
    size_t ring_bytes = PageRound(count * sizeof(struct io_uring_buf));
    void* br = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED) {
      reason_ = "mmap of the buffer ring failed";
      return -errno;
    }
    size_t mem_bytes = PageRound(static_cast<size_t>(count) * size);
    void* mem = mmap(nullptr, mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      int err = -errno;
      munmap(br, ring_bytes);
      reason_ = "mmap of the receive buffers failed";
      return err;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = reinterpret_cast<uintptr_t>(br);
    reg.ring_entries = count;
    reg.bgid = kGroup;
    int rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) {
      munmap(br, ring_bytes);
      munmap(mem, mem_bytes);
      reason_ = std::string("io_uring_register_buf_ring: ") + strerror(-rc) +
                " (provided buffer rings need Linux 5.19+)";
      return rc;
    }
    br_ = static_cast<struct io_uring_buf_ring*>(br);
    br_bytes_ = ring_bytes;
    buf_count_ = count;
    buf_size_ = size;
    pages_ = new SharedPages{mem, mem_bytes, 2};  // one for the Ring, one for the ArrayBuffer
    held_.assign(count, 0);
    io_uring_buf_ring_init(br_);
    int mask = io_uring_buf_ring_mask(count);
    for (unsigned i = 0; i < count; i++)
      io_uring_buf_ring_add(br_, BufferAddr(i), size, static_cast<unsigned short>(i), mask, static_cast<int>(i));
    io_uring_buf_ring_advance(br_, static_cast<int>(count));
    free_bufs_ = count;
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
        env, mem, static_cast<size_t>(count) * size,
        [](Napi::Env, void*, SharedPages* p) { ReleasePages(p); }, pages_);
    buffers_ = Napi::Persistent(ab);
    return 0;
  }

  uint8_t* BufferAddr(unsigned id) { return static_cast<uint8_t*>(pages_->base) + static_cast<size_t>(id) * buf_size_; }

  // ---- submission ----

  // Publishes the SQEs filled since the last call; returns how many the
  // kernel has not consumed yet.
  unsigned Flush() {
    unsigned tail = ring_.sq.sqe_tail;
    if (ring_.sq.sqe_head != tail) {
      ring_.sq.sqe_head = tail;
      io_uring_smp_store_release(ring_.sq.ktail, tail);
    }
    return tail - io_uring_smp_load_acquire(ring_.sq.khead);
  }

  int Enter(unsigned to_submit, unsigned min_complete, unsigned flags, int timeout_ms) {
    int rc;
    if (min_complete > 0 && timeout_ms >= 0) {
      struct __kernel_timespec ts;
      ts.tv_sec = timeout_ms / 1000;
      ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000LL;
      struct io_uring_getevents_arg arg;
      memset(&arg, 0, sizeof arg);
      arg.sigmask_sz = _NSIG / 8;
      arg.ts = reinterpret_cast<uintptr_t>(&ts);
      rc = io_uring_enter2(ring_.ring_fd, to_submit, min_complete, flags | IORING_ENTER_EXT_ARG,
                           reinterpret_cast<sigset_t*>(&arg), sizeof arg);
    } else {
      rc = io_uring_enter(ring_.ring_fd, to_submit, min_complete, flags, nullptr);
    }
    stats_[kEnters]++;
    if (min_complete > 0) stats_[kWaits]++;
    if (rc > 0) stats_[kSubmitted] += rc;
    if (rc == -EBADR) stats_[kLost]++;
    return rc;
  }

  // An SQE, submitting what is queued when the SQ is full. nullptr when the
  // kernel takes nothing (-EBUSY: the CQ overflowed and JS must reap first).
  struct io_uring_sqe* Sqe(int* err, unsigned need = 1) {
    if (!ready_) {
      *err = -EBADF;
      return nullptr;
    }
    if (io_uring_sq_space_left(&ring_) < need) {
      stats_[kSqFull]++;
      unsigned n = Flush();
      int rc = n > 0 ? Enter(n, 0, 0, -1) : 0;
      if (io_uring_sq_space_left(&ring_) < need) {
        *err = rc < 0 ? rc : -EBUSY;
        return nullptr;
      }
    }
    struct io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) *err = -EBUSY;
    return sqe;
  }

  void Tag(struct io_uring_sqe* sqe, uint64_t data) {
    io_uring_sqe_set_data64(sqe, data);
    inflight_++;
  }

  static uint32_t Ud(const Napi::CallbackInfo& info, size_t i) {
    return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Uint32Value() : 0;
  }

  // Queues one SQE that prep(sqe) fills, tagged with the user data in
  // argument ud_arg. 0, or -errno when the submission queue has no room.
  template <class Prep>
  Napi::Value Queue(const Napi::CallbackInfo& info, size_t ud_arg, Prep prep) {
    int err = 0;
    struct io_uring_sqe* sqe = Sqe(&err);
    if (!sqe) return Num(info.Env(), err);
    prep(sqe);
    Tag(sqe, Ud(info, ud_arg));
    return Num(info.Env(), 0);
  }

  // accept(listenFd, ud): multishot accept; each CQE's res is a new fd.
  Napi::Value Accept(const Napi::CallbackInfo& info) {
    return Queue(info, 1, [&](struct io_uring_sqe* sqe) {
      io_uring_prep_multishot_accept(sqe, Int(info, 0, -1), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    });
  }

  // recv(fd, ud): multishot recv into the buffer ring.
  Napi::Value Recv(const Napi::CallbackInfo& info) {
    if (ready_ && br_ == nullptr) return Num(info.Env(), -ENOBUFS);
    return Queue(info, 1, [&](struct io_uring_sqe* sqe) {
      io_uring_prep_recv_multishot(sqe, Int(info, 0, -1), nullptr, 0, 0);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = kGroup;
    });
  }

  // send(fd, view, ud, msgFlags): the view stays referenced until its CQE.
  Napi::Value Send(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* data;
    size_t len;
    if (info.Length() < 2 || !info[1].IsObject() || !GetBytes(info[1], &data, &len)) return Num(env, -EINVAL);
    int err = 0;
    struct io_uring_sqe* sqe = Sqe(&err);
    if (!sqe) return Num(env, err);
    uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<uint32_t>(refs_.size());
      refs_.push_back(nullptr);
    }
    napi_create_reference(env, info[1], 1, &refs_[slot]);
    int flags = MSG_NOSIGNAL | Int(info, 3, 0);
    io_uring_prep_send(sqe, Int(info, 0, -1), data, len, flags);
    Tag(sqe, (static_cast<uint64_t>(slot + 1) << 32) | Ud(info, 2));
    return Num(env, 0);
  }

  // closeFd(fd, ud, cancelFirst): with cancelFirst, every request on fd is
  // cancelled first (hard-linked, so the close runs after the cancel whatever
  // it finds).
  Napi::Value CloseFd(const Napi::CallbackInfo& info) {
    bool cancel_first = info.Length() > 2 && info[2].ToBoolean();
    int err = 0;
    struct io_uring_sqe* sqe = Sqe(&err, cancel_first ? 2 : 1);
    if (!sqe) return Num(info.Env(), err);
    int fd = Int(info, 0, -1);
    if (cancel_first) {
      io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
      sqe->flags |= IOSQE_IO_HARDLINK;
      Tag(sqe, kInternal);
      sqe = io_uring_get_sqe(&ring_);
    }
    io_uring_prep_close(sqe, fd);
    Tag(sqe, Ud(info, 1));
    return Num(info.Env(), 0);
  }

  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    return Queue(info, 2, [&](struct io_uring_sqe* sqe) {
      io_uring_prep_shutdown(sqe, Int(info, 0, -1), Int(info, 1, SHUT_WR));
    });
  }

  // cancel(targetUd, ud): cancels every request queued with targetUd.
  // Sends are tagged with a buffer slot in the high bits, so they are
  // cancelled by fd rather than by user data.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    return Queue(info, 1, [&](struct io_uring_sqe* sqe) {
      io_uring_prep_cancel64(sqe, Ud(info, 0), IORING_ASYNC_CANCEL_ALL);
    });
  }

  Napi::Value CancelFd(const Napi::CallbackInfo& info) {
    return Queue(info, 1, [&](struct io_uring_sqe* sqe) {
      io_uring_prep_cancel_fd(sqe, Int(info, 0, -1), IORING_ASYNC_CANCEL_ALL);
    });
  }

  // timeout(ms, ud): completes with -ETIME after ms. The timespec lives in a
  // slot tied to the SQE, which the kernel reads while the SQE is submitted.
  Napi::Value Timeout(const Napi::CallbackInfo& info) {
    return Queue(info, 1, [&](struct io_uring_sqe* sqe) {
      int ms = Int(info, 0, 0);
      if (ms < 0) ms = 0;
      __kernel_timespec* ts = &timespecs_[static_cast<size_t>(sqe - ring_.sq.sqes)];
      ts->tv_sec = ms / 1000;
      ts->tv_nsec = static_cast<long long>(ms % 1000) * 1000000LL;
      io_uring_prep_timeout(sqe, ts, 0, 0);
    });
  }

  // poll(fd, pollMask, ud): one-shot; res is the revents mask.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    return Queue(info, 2, [&](struct io_uring_sqe* sqe) {
      io_uring_prep_poll_add(sqe, Int(info, 0, -1), static_cast<unsigned>(Int(info, 1, POLLIN)));
    });
  }

  Napi::Value Nop(const Napi::CallbackInfo& info) {
    return Queue(info, 0, [&](struct io_uring_sqe* sqe) {
      io_uring_prep_nop(sqe);
    });
  }

  // submit(): one io_uring_enter if anything is queued; SQEs consumed or -errno.
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    if (!ready_) return Num(info.Env(), -EBADF);
    unsigned n = Flush();
    if (n == 0) return Num(info.Env(), 0);
    int rc = Enter(n, 0, 0, -1);
    return Num(info.Env(), rc == -EINTR ? 0 : rc);
  }

  // submitAndWait(minComplete, timeoutMs): submits what is queued and waits
  // for minComplete completions in the same io_uring_enter; returns how many
  // tuples were written (fewer on timeout), or -errno.
  Napi::Value SubmitAndWait(const Napi::CallbackInfo& info) {
    if (!ready_) return Num(info.Env(), -EBADF);
    int min = Int(info, 0, 1);
    int timeout_ms = Int(info, 1, -1);
    if (min > cap_) min = cap_;
    int count = Harvest(0);
    int64_t deadline = timeout_ms > 0 ? MonotonicMs() + timeout_ms : 0;
    for (;;) {
      unsigned to_submit = Flush();
      bool wait = count < min && timeout_ms != 0;
      if (count == cap_) wait = false;
      if (!wait && to_submit == 0) return Num(info.Env(), count);
      int left = -1;
      if (wait && timeout_ms > 0) {
        int64_t l = deadline - MonotonicMs();
        left = l > 0 ? static_cast<int>(l) : 0;
      }
      int rc = wait ? Enter(to_submit, static_cast<unsigned>(min - count), IORING_ENTER_GETEVENTS, left)
                    : Enter(to_submit, 0, 0, -1);
      if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY && rc != -EAGAIN && rc != -EBADR) {
        if (count > 0) return Num(info.Env(), count);
        return Num(info.Env(), rc);
      }
      count += Harvest(count);
      if (!wait || count >= min || count == cap_) return Num(info.Env(), count);
      if (rc == -EBUSY || rc == -EAGAIN) return Num(info.Env(), count);
      if (timeout_ms > 0 && deadline - MonotonicMs() <= 0) return Num(info.Env(), count);
    }
  }

  // reap(): copies ready completions (no syscall unless the CQ overflowed).
  Napi::Value Reap(const Napi::CallbackInfo& info) {
    if (!ready_) return Num(info.Env(), -EBADF);
    return Num(info.Env(), Harvest(0));
  }

  // Copies CQEs into out_[start..cap_), flushing the kernel's overflow list
  // into the CQ as often as it takes: with IORING_FEAT_NODROP nothing is
  // lost, it waits there.
  int Harvest(int start) {
    int count = start;
    for (;;) {
      unsigned head;
      unsigned seen = 0;
      struct io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        if (count == cap_) break;
        seen++;
        if (Consume(cqe, out_ + 4 * count)) count++;
      }
      io_uring_cq_advance(&ring_, seen);
      if (count == cap_) break;
      if (!io_uring_cq_has_overflow(&ring_)) break;
      stats_[kOverflowFlushes]++;
      int rc = Enter(0, 0, IORING_ENTER_GETEVENTS, -1);
      if (rc < 0 && rc != -EINTR && rc != -EBADR && rc != -EBUSY) break;
      if (io_uring_cq_ready(&ring_) == 0 && io_uring_cq_has_overflow(&ring_)) break;
    }
    stats_[kReaped] += count - start;
    return count - start;
  }

  // Books one CQE; writes its tuple to `slot` and returns true when it is for JS.
  bool Consume(const struct io_uring_cqe* cqe, int32_t* slot) {
    uint64_t ud = cqe->user_data;
    uint32_t flags = cqe->flags;
    if (!(flags & IORING_CQE_F_MORE) && inflight_ > 0) inflight_--;
    int32_t bid = -1;
    if ((flags & IORING_CQE_F_BUFFER) && br_ != nullptr) {
      unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
      if (id < buf_count_ && !held_[id]) {
        held_[id] = 1;
        free_bufs_--;
        bid = static_cast<int32_t>(id);
      }
    }
    uint32_t send_slot = static_cast<uint32_t>((ud >> 32) & 0x7fffffffu);
    if (send_slot != 0) ReleaseSlot(send_slot - 1);
    if (ud & kInternal) {
      if (bid >= 0) GiveBack(static_cast<unsigned>(bid));
      return false;
    }
    if (cqe->res == -ENOBUFS) stats_[kNoBuffers]++;
    if (slot == nullptr) {  // tearing down: nobody will read it
      if (bid >= 0) GiveBack(static_cast<unsigned>(bid));
      return false;
    }
    slot[0] = static_cast<int32_t>(static_cast<uint32_t>(ud));
    slot[1] = cqe->res;
    slot[2] = static_cast<int32_t>(flags & 0xffffu);
    slot[3] = bid;
    return true;
  }

  void ReleaseSlot(uint32_t slot) {
    if (slot >= refs_.size() || refs_[slot] == nullptr) return;
    napi_delete_reference(env_, refs_[slot]);
    refs_[slot] = nullptr;
    free_slots_.push_back(slot);
  }

  void GiveBack(unsigned id) {
    held_[id] = 0;
    io_uring_buf_ring_add(br_, BufferAddr(id), buf_size_, static_cast<unsigned short>(id),
                          io_uring_buf_ring_mask(buf_count_), 0);
    io_uring_buf_ring_advance(br_, 1);
    free_bufs_++;
  }

  // returnBuffer(id): 0, -ERANGE (no such buffer) or -EINVAL (not held by JS).
  Napi::Value ReturnBuffer(const Napi::CallbackInfo& info) {
    if (!ready_) return Num(info.Env(), -EBADF);
    int id = Int(info, 0, -1);
    if (br_ == nullptr || id < 0 || static_cast<unsigned>(id) >= buf_count_) return Num(info.Env(), -ERANGE);
    if (!held_[id]) return Num(info.Env(), -EINVAL);
    GiveBack(static_cast<unsigned>(id));
    return Num(info.Env(), 0);
  }

  Napi::Value BuffersFree(const Napi::CallbackInfo& info) { return Num(info.Env(), ready_ ? free_bufs_ : 0); }

  // Requests queued or in flight (a multishot request counts until its last CQE).
  Napi::Value Pending(const Napi::CallbackInfo& info) {
    if (!ready_) return Num(info.Env(), 0);
    return Num(info.Env(), static_cast<double>(inflight_));
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    uint8_t* data;
    size_t len;
    if (info.Length() < 1 || !info[0].IsTypedArray() || !GetBytes(info[0], &data, &len)) return info.Env().Undefined();
    double* out = reinterpret_cast<double*>(data);
    size_t n = len / sizeof(double);
    for (size_t i = 0; i < n && i < kStatCount; i++) out[i] = static_cast<double>(stats_[i]);
    return info.Env().Undefined();
  }

  Napi::Value Reason(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), reason_); }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("fd", Num(env, ready_ ? ring_.ring_fd : -1));
    o.Set("sqEntries", Num(env, ready_ ? ring_.sq.ring_entries : 0));
    o.Set("cqEntries", Num(env, ready_ ? ring_.cq.ring_entries : 0));
    o.Set("features", Num(env, features_));
    Napi::Array flags = Napi::Array::New(env);
    Napi::Array dropped = Napi::Array::New(env);
    for (unsigned bit = 1; bit != 0; bit <<= 1) {
      const char* name = FlagName(bit);
      std::string label = name ? name : "0x" + ToHex(bit);
      if (flags_ & bit) flags.Set(flags.Length(), label);
      if (dropped_ & bit) dropped.Set(dropped.Length(), label);
    }
    o.Set("setupFlags", flags);
    o.Set("droppedFlags", dropped);
    o.Set("bufferCount", Num(env, buf_count_));
    o.Set("bufferSize", Num(env, buf_size_));
    return o;
  }

  static std::string ToHex(unsigned v) {
    char buf[16];
    snprintf(buf, sizeof buf, "%x", v);
    return buf;
  }

  Napi::Value Buffers(const Napi::CallbackInfo& info) {
    if (buffers_.IsEmpty()) return info.Env().Undefined();
    return buffers_.Value();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Teardown();
    return info.Env().Undefined();
  }

  // Cancels everything in flight and waits (at most a second) for the
  // kernel to finish with the buffers it was given, then releases the ring.
  void Teardown() {
    if (ready_) {
      // Requests queued but never submitted are dropped, not run: each
      // becomes a NOP that keeps its user_data, so its bookkeeping (a send's
      // buffer reference) is released by its completion like any other.
      unsigned khead = io_uring_smp_load_acquire(ring_.sq.khead);
      for (unsigned i = khead; i != ring_.sq.sqe_tail; i++) {
        struct io_uring_sqe* q = &ring_.sq.sqes[i & ring_.sq.ring_mask];
        uint64_t data = q->user_data;
        io_uring_prep_nop(q);
        q->user_data = data;
      }
      if (inflight_ > 0) {
        int err = 0;
        struct io_uring_sqe* sqe = Sqe(&err);
        if (sqe != nullptr) {
          io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
          Tag(sqe, kInternal);
        }
        int64_t deadline = MonotonicMs() + 1000;
        while (inflight_ > 0) {
          int64_t left = deadline - MonotonicMs();
          if (left <= 0) break;
          int rc = Enter(Flush(), 1, IORING_ENTER_GETEVENTS, static_cast<int>(left));
          unsigned head;
          unsigned seen = 0;
          struct io_uring_cqe* cqe;
          io_uring_for_each_cqe(&ring_, head, cqe) {
            seen++;
            Consume(cqe, nullptr);
          }
          io_uring_cq_advance(&ring_, seen);
          if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY && rc != -EBADR) break;
        }
      }
      if (br_ != nullptr) io_uring_unregister_buf_ring(&ring_, kGroup);
      io_uring_queue_exit(&ring_);
      ready_ = false;
    }
    if (br_ != nullptr) {
      munmap(br_, br_bytes_);
      br_ = nullptr;
    }
    if (pages_ != nullptr) {
      ReleasePages(pages_);
      pages_ = nullptr;
    }
    for (napi_ref& r : refs_) {
      if (r != nullptr) napi_delete_reference(env_, r);
      r = nullptr;
    }
    refs_.clear();
    free_slots_.clear();
    free_bufs_ = 0;
    if (!buffers_.IsEmpty()) buffers_.Reset();
    if (!completions_.IsEmpty()) completions_.Reset();
    out_ = nullptr;
    cap_ = 0;
  }

  napi_env env_ = nullptr;
  struct io_uring ring_;
  bool ready_ = false;
  unsigned flags_ = 0, dropped_ = 0, features_ = 0;
  std::string reason_;
  int32_t* out_ = nullptr;
  int cap_ = 0;
  Napi::ObjectReference completions_;
  uint64_t inflight_ = 0;
  uint64_t stats_[kStatCount] = {};
  std::vector<__kernel_timespec> timespecs_;
  std::vector<napi_ref> refs_;
  std::vector<uint32_t> free_slots_;
  struct io_uring_buf_ring* br_ = nullptr;
  size_t br_bytes_ = 0;
  unsigned buf_count_ = 0, buf_size_ = 0, free_bufs_ = 0;
  std::vector<uint8_t> held_;
  SharedPages* pages_ = nullptr;
  Napi::Reference<Napi::ArrayBuffer> buffers_;
};

Napi::Value RingProbe(const Napi::CallbackInfo& info) {
  std::string reason;
  return Napi::String::New(info.Env(), UringAvailable(&reason) ? "" : reason);
}

}  // namespace

void InitRing(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeRing", NativeRing::Define(env));
  exports.Set("ringProbe", Napi::Function::New<RingProbe>(env, "ringProbe"));
}

}  // namespace iomux

#else  // compiled without liburing: a Ring that explains why it cannot start

namespace iomux {
namespace {

class NativeRing : public Napi::ObjectWrap<NativeRing> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeRing",
                       {
                           InstanceMethod<&NativeRing::Init>("init"),
                           InstanceMethod<&NativeRing::Reason>("reason"),
                       });
  }
  explicit NativeRing(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRing>(info) {}

 private:
  Napi::Value Init(const Napi::CallbackInfo& info) { return Num(info.Env(), -ENOSYS); }
  Napi::Value Reason(const Napi::CallbackInfo& info) {
    std::string reason;
    UringAvailable(&reason);
    return Napi::String::New(info.Env(), reason);
  }
};

Napi::Value RingProbe(const Napi::CallbackInfo& info) {
  std::string reason;
  UringAvailable(&reason);
  return Napi::String::New(info.Env(), reason);
}

}  // namespace

void InitRing(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeRing", NativeRing::Define(env));
  exports.Set("ringProbe", Napi::Function::New<RingProbe>(env, "ringProbe"));
}

}  // namespace iomux
#endif
