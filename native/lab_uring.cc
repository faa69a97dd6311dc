// `c-uring`: the C reference proactor. One thread per ring (default one):
// multishot accept, multishot recv into a provided buffer ring, one send in
// flight per connection. Input is copied out of the provided buffer at once so
// the buffer goes straight back to the kernel. Backpressure: above 1 MiB of
// unsent output the recv is cancelled, and re-armed below 256 KiB.
// Older kernels without multishot accept/recv fall back to single-shot ones.
#include "lab_server.h"

#ifdef IOMUX_HAVE_URING
#include <errno.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <future>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace iomux {
namespace lab {
namespace {

constexpr unsigned kSqEntries = 1024;
constexpr unsigned kCqEntries = 16384;
constexpr unsigned kBufCount = 2048;  // a power of two
constexpr unsigned kBufSize = 4096;
constexpr int kBufGroup = 0;
constexpr size_t kHighWater = 1 << 20;
constexpr size_t kLowWater = 256 << 10;

// user_data: a Conn pointer (8-byte aligned) or 0, plus the operation in the low bits.
enum Op : uint64_t { kAccept = 1, kRecv = 2, kSend = 3, kCancel = 4, kWake = 5, kAcceptRetry = 6 };
// After EMFILE/ENFILE/ENOMEM/ENOBUFS the connection stays in the backlog and
// an accept armed again at once fails again at once: wait this long first.
constexpr int kAcceptRetryMs = 50;
constexpr uint64_t kOpMask = 7;

int64_t NowMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

struct alignas(8) Conn {
  int fd = -1;
  std::string in, out;  // out: produced, not yet handed to a send
  std::string sending;  // the buffer of the send in flight
  bool recv_armed = false;
  bool cancel_sent = false;
  bool send_inflight = false;
  bool eof = false;          // the peer finished sending
  bool close_after = false;  // a response ended the connection (http)
  bool draining = false;     // half-closed after close_after; input discarded
  bool stop_reading = false; // the server is stopping
  bool paused = false;       // too much unsent output
  bool closing = false;      // error: drop everything, close when idle
};

class RingReactor {
 public:
  RingReactor(Protocol protocol, ServerStats& stats, int grace_ms)
      : protocol_(protocol), stats_(stats), grace_ms_(grace_ms) {}
  ~RingReactor() {
    Join();
    if (listen_fd_ >= 0) close(listen_fd_);
    if (wake_ >= 0) close(wake_);
  }

  // Starts the thread, which sets up its own ring (a SINGLE_ISSUER ring
  // belongs to the thread that created it); returns once setup is known.
  int Init(int listen_fd, SysError* err) {
    listen_fd_ = listen_fd;
    wake_ = eventfd(0, EFD_CLOEXEC);
    if (wake_ < 0) return *err = {-errno, "eventfd"}, err->rc;
    std::promise<SysError> ready;
    std::future<SysError> f = ready.get_future();
    thread_ = std::thread(&RingReactor::Main, this, std::move(ready));
    *err = f.get();
    if (err->rc < 0) {
      thread_.join();
      return err->rc;
    }
    return 0;
  }

  void RequestStop() {
    uint64_t one = 1;
    (void)!write(wake_, &one, sizeof one);
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Main(std::promise<SysError> ready) {
    SysError err = Setup();
    ready.set_value(err);
    if (err.rc < 0) return Teardown();
    Loop();
    Teardown();
  }

  SysError Setup() {
    io_uring_params p = {};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = kCqEntries;
    int rc = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    if (rc == -EINVAL) {  // a kernel without SINGLE_ISSUER / COOP_TASKRUN
      p = {};
      p.flags = IORING_SETUP_CQSIZE;
      p.cq_entries = kCqEntries;
      rc = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    }
    if (rc < 0) return {rc, "io_uring_queue_init"};
    have_ring_ = true;

    size_t ring_bytes = kBufCount * sizeof(io_uring_buf);
    void* mem = mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return {-errno, "mmap"};
    br_ = static_cast<io_uring_buf_ring*>(mem);
    io_uring_buf_ring_init(br_);
    io_uring_buf_reg reg = {};
    reg.ring_addr = reinterpret_cast<uintptr_t>(br_);
    reg.ring_entries = kBufCount;
    reg.bgid = kBufGroup;
    rc = io_uring_register_buf_ring(&ring_, &reg, 0);
    if (rc < 0) return {rc, "io_uring_register_buf_ring"};
    have_br_ = true;
    bufs_.reset(new char[static_cast<size_t>(kBufCount) * kBufSize]);
    for (unsigned i = 0; i < kBufCount; i++)
      io_uring_buf_ring_add(br_, bufs_.get() + static_cast<size_t>(i) * kBufSize, kBufSize, i,
                            io_uring_buf_ring_mask(kBufCount), i);
    io_uring_buf_ring_advance(br_, kBufCount);
    return {0, ""};
  }

  void Teardown() {
    for (Conn* c : conns_) shutdown(c->fd, SHUT_RDWR);  // sends still queued fail now
    if (have_ring_) io_uring_queue_exit(&ring_);
    have_ring_ = false;
    for (Conn* c : conns_) {
      close(c->fd);
      stats_.active.fetch_sub(1, std::memory_order_relaxed);
      delete c;
    }
    conns_.clear();
    if (br_) munmap(br_, kBufCount * sizeof(io_uring_buf));
    br_ = nullptr;
  }

  io_uring_sqe* Sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    while (!s) {
      io_uring_submit(&ring_);
      s = io_uring_get_sqe(&ring_);
    }
    return s;
  }

  void ArmAccept() {
    io_uring_sqe* s = Sqe();
    if (multishot_accept_) io_uring_prep_multishot_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    else io_uring_prep_accept(s, listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    s->user_data = kAccept;
    accept_armed_ = true;
  }

  void ArmWake() {
    io_uring_sqe* s = Sqe();
    io_uring_prep_read(s, wake_, &wake_value_, sizeof wake_value_, 0);
    s->user_data = kWake;
  }

  void ArmRecv(Conn* c) {
    io_uring_sqe* s = Sqe();
    if (multishot_recv_) io_uring_prep_recv_multishot(s, c->fd, nullptr, 0, 0);
    else io_uring_prep_recv(s, c->fd, nullptr, kBufSize, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = kBufGroup;
    s->user_data = reinterpret_cast<uint64_t>(c) | kRecv;
    c->recv_armed = true;
    c->cancel_sent = false;
  }

  void Loop() {
    ArmAccept();
    ArmWake();
    int64_t deadline = 0;
    for (;;) {
      io_uring_cqe* cqe;
      int rc;
      if (stopping_) {
        int64_t left = deadline - NowMs();
        if (left <= 0) break;
        __kernel_timespec ts = {left / 1000, (left % 1000) * 1000000};
        rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      } else {
        rc = io_uring_submit_and_wait(&ring_, 1);
      }
      if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EAGAIN && rc != -EBUSY) break;
      unsigned head, seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        seen++;
        Handle(cqe->user_data, cqe->res, cqe->flags);
        if (wake_seen_ && !stopping_) {
          stopping_ = true;
          deadline = NowMs() + grace_ms_;
          BeginStop();
        }
      }
      io_uring_cq_advance(&ring_, seen);
      if (stopping_ && conns_.empty() && !accept_armed_) break;
    }
  }

  void Handle(uint64_t ud, int res, unsigned flags) {
    Conn* c = reinterpret_cast<Conn*>(ud & ~kOpMask);
    switch (ud & kOpMask) {
      case kAccept:
        if (!(flags & IORING_CQE_F_MORE)) accept_armed_ = false;
        if (res >= 0) {
          OnAccept(res);
        } else if (res == -EINVAL && multishot_accept_) {
          multishot_accept_ = false;  // a kernel before 5.19
        } else if (res != -ECANCELED) {
          stats_.errors.fetch_add(1, std::memory_order_relaxed);
          if (res == -EINVAL) accept_broken_ = true;  // never spin on a dead listener
          if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
            if (!accept_armed_ && !stopping_ && !accept_retry_) {
              accept_retry_ = true;
              retry_ts_ = {0, kAcceptRetryMs * 1000000LL};
              io_uring_sqe* s = Sqe();
              io_uring_prep_timeout(s, &retry_ts_, 0, 0);
              s->user_data = kAcceptRetry;
            }
            break;
          }
        }
        if (!accept_armed_ && !stopping_ && !accept_broken_) ArmAccept();
        if (!accept_armed_ && stopping_ && listen_fd_ >= 0) {
          close(listen_fd_);
          listen_fd_ = -1;
        }
        break;
      case kWake:
        wake_seen_ = true;
        break;
      case kAcceptRetry:
        accept_retry_ = false;
        if (!accept_armed_ && !stopping_ && !accept_broken_ && listen_fd_ >= 0) ArmAccept();
        break;
      case kRecv:
        if (!(flags & IORING_CQE_F_MORE)) c->recv_armed = false;
        if (flags & IORING_CQE_F_BUFFER) {
          unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
          if (res > 0) OnData(c, bufs_.get() + static_cast<size_t>(bid) * kBufSize, res);
          io_uring_buf_ring_add(br_, bufs_.get() + static_cast<size_t>(bid) * kBufSize, kBufSize, bid,
                                io_uring_buf_ring_mask(kBufCount), 0);
          io_uring_buf_ring_advance(br_, 1);
        }
        if (res == 0) {
          c->eof = true;
        } else if (res == -EINVAL && multishot_recv_) {
          multishot_recv_ = false;  // a kernel before 6.0: re-armed single-shot below
        } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
          if (res != -ECONNRESET) stats_.errors.fetch_add(1, std::memory_order_relaxed);
          c->closing = true;
        }
        Progress(c);
        break;
      case kSend:
        c->send_inflight = false;
        if (res < 0) {
          if (res != -ECONNRESET && res != -EPIPE) stats_.errors.fetch_add(1, std::memory_order_relaxed);
          c->closing = true;
        } else {
          stats_.bytes_out.fetch_add(res, std::memory_order_relaxed);
          c->sending.erase(0, res);
        }
        Progress(c);
        break;
      default:  // kCancel: the cancelled request reports for itself
        break;
    }
  }

  void OnAccept(int fd) {
    stats_.accepted.fetch_add(1, std::memory_order_relaxed);
    if (stopping_) {
      close(fd);
      return;
    }
    TuneAccepted(fd);
    Conn* c = new Conn();
    c->fd = fd;
    conns_.insert(c);
    stats_.active.fetch_add(1, std::memory_order_relaxed);
    Progress(c);
  }

  void OnData(Conn* c, const char* data, int n) {
    stats_.bytes_in.fetch_add(n, std::memory_order_relaxed);
    if (c->close_after || c->closing || c->stop_reading) return;  // input after the last response is dropped
    if (protocol_ == kEcho) {
      stats_.requests.fetch_add(1, std::memory_order_relaxed);
      c->out.append(data, n);
    } else {
      c->in.append(data, n);
      if (HandleHttp(c->in, c->out, stats_)) c->close_after = true;
    }
  }

  // The one place that decides what a connection does next.
  void Progress(Conn* c) {
    if (c->closing) {
      c->out.clear();
      if (!c->send_inflight) c->sending.clear();
    } else if (!c->send_inflight) {
      if (c->sending.empty()) c->sending.swap(c->out);
      if (!c->sending.empty()) {
        io_uring_sqe* s = Sqe();
        io_uring_prep_send(s, c->fd, c->sending.data(), c->sending.size(), MSG_NOSIGNAL);
        s->user_data = reinterpret_cast<uint64_t>(c) | kSend;
        c->send_inflight = true;
      }
    }
    size_t pending = c->sending.size() + c->out.size();
    bool flushed = !c->send_inflight && pending == 0;
    if (flushed && c->close_after && !c->draining && !c->closing) {
      shutdown(c->fd, SHUT_WR);
      c->draining = true;
    }
    if (pending > kHighWater) c->paused = true;
    else if (pending < kLowWater) c->paused = false;

    bool want_recv = !c->closing && !c->eof && !c->stop_reading && !c->paused;
    if (want_recv && !c->recv_armed) {
      ArmRecv(c);
    } else if (!want_recv && c->recv_armed && !c->cancel_sent) {
      io_uring_sqe* s = Sqe();
      io_uring_prep_cancel64(s, reinterpret_cast<uint64_t>(c) | kRecv, 0);
      s->user_data = kCancel;
      c->cancel_sent = true;
    }
    bool done = c->closing || ((c->eof || c->stop_reading) && flushed);
    if (done && !c->recv_armed && !c->send_inflight) {
      close(c->fd);
      conns_.erase(c);
      stats_.active.fetch_sub(1, std::memory_order_relaxed);
      delete c;
    }
  }

  void BeginStop() {
    if (accept_armed_) {
      io_uring_sqe* s = Sqe();
      io_uring_prep_cancel64(s, kAccept, 0);
      s->user_data = kCancel;
    } else if (listen_fd_ >= 0) {
      close(listen_fd_);
      listen_fd_ = -1;
    }
    std::vector<Conn*> all(conns_.begin(), conns_.end());
    for (Conn* c : all) {
      c->stop_reading = true;
      Progress(c);
    }
  }

  Protocol protocol_;
  ServerStats& stats_;
  int grace_ms_;
  int listen_fd_ = -1;
  int wake_ = -1;
  uint64_t wake_value_ = 0;
  std::thread thread_;
  io_uring ring_;
  bool have_ring_ = false;
  io_uring_buf_ring* br_ = nullptr;
  bool have_br_ = false;
  std::unique_ptr<char[]> bufs_;
  std::unordered_set<Conn*> conns_;
  bool multishot_accept_ = true;
  bool multishot_recv_ = true;
  bool accept_armed_ = false;
  bool accept_broken_ = false;
  bool accept_retry_ = false;  // a kAcceptRetry timeout is pending
  __kernel_timespec retry_ts_ = {0, 0};
  bool wake_seen_ = false;
  bool stopping_ = false;
};


}  // namespace

std::unique_ptr<LabServer> NewUringServer() { return std::make_unique<ReactorGroupServer<RingReactor>>(); }

}  // namespace lab
}  // namespace iomux

#else  // compiled without liburing

namespace iomux {
namespace lab {
std::unique_ptr<LabServer> NewUringServer() { return nullptr; }
}  // namespace lab
}  // namespace iomux

#endif
