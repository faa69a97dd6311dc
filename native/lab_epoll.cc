// `c-epoll`: the C reference reactor. One thread per reactor (default one),
// epoll edge-triggered for connections, non-blocking sockets, output buffered
// per connection with backpressure (no reading while a reply is unsent).
// With --threads N each reactor has its own SO_REUSEPORT listener.
#include <errno.h>

#include <memory>

#include "lab_server.h"

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace iomux {
namespace lab {
namespace {

constexpr int kReadsPerTurn = 16;  // then other connections get a turn
constexpr size_t kReadBuf = 65536;
// After EMFILE/ENFILE/ENOMEM/ENOBUFS the connection stays in the backlog and
// the (level-triggered) listener stays readable: it is left out of the wait
// for this long instead of spinning.
constexpr int kAcceptPauseMs = 50;

int64_t NowMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

struct Conn {
  int fd = -1;
  std::string in, out;
  size_t out_off = 0;
  bool eof = false;        // no more input: close once `out` is flushed
  bool close_after = false;  // a response ended the connection (http)
  bool draining = false;   // half-closed after close_after; input discarded
  bool closed = false;
  bool queued = false;     // in the reactor's run-again list
};

class Reactor {
 public:
  Reactor(Protocol protocol, ServerStats& stats, int grace_ms) : protocol_(protocol), stats_(stats), grace_ms_(grace_ms) {}
  ~Reactor() {
    for (Conn* c : conns_)
      if (c) {
        close(c->fd);
        delete c;
      }
    if (listen_fd_ >= 0) close(listen_fd_);
    if (ep_ >= 0) close(ep_);
    if (wake_ >= 0) close(wake_);
  }

  int Init(int listen_fd, SysError* err) {
    listen_fd_ = listen_fd;
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return *err = {-errno, "epoll_create1"}, err->rc;
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) return *err = {-errno, "eventfd"}, err->rc;
    epoll_event e = {};
    e.events = EPOLLIN;  // level-triggered: accept a batch per wakeup, fairly
    e.data.ptr = &listen_fd_;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &e) < 0) return *err = {-errno, "epoll_ctl"}, err->rc;
    e.data.ptr = &wake_;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &e) < 0) return *err = {-errno, "epoll_ctl"}, err->rc;
    thread_ = std::thread(&Reactor::Loop, this);
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
  void Loop() {
    std::vector<epoll_event> evs(512);
    buf_.reset(new char[kReadBuf]);
    bool stopping = false;
    int64_t deadline = 0;
    for (;;) {
      int timeout = -1;
      if (!again_.empty()) timeout = 0;
      else if (stopping) timeout = static_cast<int>(std::max<int64_t>(1, deadline - NowMs()));
      if (accept_resume_ > 0 && !stopping) {
        int64_t now = NowMs();
        if (now >= accept_resume_) {
          ResumeAccept();
        } else {
          int left = static_cast<int>(accept_resume_ - now);
          if (timeout < 0 || left < timeout) timeout = left;
        }
      }
      int n = epoll_wait(ep_, evs.data(), static_cast<int>(evs.size()), timeout);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; i++) {
        void* p = evs[i].data.ptr;
        if (p == &listen_fd_) {
          Accept();
        } else if (p == &wake_) {
          if (!stopping) {
            stopping = true;
            deadline = NowMs() + grace_ms_;
            BeginStop();
          }
        } else {
          Conn* c = static_cast<Conn*>(p);
          if (c->closed) continue;
          if (evs[i].events & EPOLLERR) {
            Close(c);
            continue;
          }
          Run(c, evs[i].events);
        }
      }
      std::vector<Conn*> again;
      again.swap(again_);
      for (Conn* c : again) {
        c->queued = false;
        if (!c->closed) Run(c, EPOLLRDHUP);  // read on until EAGAIN
      }
      for (Conn* c : graveyard_) delete c;  // after the batch: no stale pointers
      graveyard_.clear();
      if (stopping && (live_ == 0 || NowMs() >= deadline)) break;
    }
    for (Conn*& c : conns_)
      if (c) {
        close(c->fd);
        delete c;
        c = nullptr;
        stats_.active.fetch_sub(1, std::memory_order_relaxed);
      }
    live_ = 0;
  }

  void Accept() {
    for (int i = 0; i < 64; i++) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
          stats_.errors.fetch_add(1, std::memory_order_relaxed);
          PauseAccept();
        }
        return;
      }
      TuneAccepted(fd);
      stats_.accepted.fetch_add(1, std::memory_order_relaxed);
      Conn* c = new Conn();
    c->fd = fd;
      epoll_event e = {};
      e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      e.data.ptr = c;
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &e) < 0) {
        stats_.errors.fetch_add(1, std::memory_order_relaxed);
        close(fd);
        delete c;
        continue;
      }
      if (static_cast<size_t>(fd) >= conns_.size()) conns_.resize(fd + 1024, nullptr);
      conns_[fd] = c;
      live_++;
      stats_.active.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void PauseAccept() {
    epoll_event e = {};
    e.data.ptr = &listen_fd_;
    if (accept_resume_ == 0) epoll_ctl(ep_, EPOLL_CTL_MOD, listen_fd_, &e);  // no events: left out of the wait
    accept_resume_ = NowMs() + kAcceptPauseMs;
  }

  void ResumeAccept() {
    accept_resume_ = 0;
    epoll_event e = {};
    e.events = EPOLLIN;
    e.data.ptr = &listen_fd_;
    epoll_ctl(ep_, EPOLL_CTL_MOD, listen_fd_, &e);
  }

  void BeginStop() {
    accept_resume_ = 0;
    epoll_ctl(ep_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    close(listen_fd_);
    listen_fd_ = -1;
    // Replies already produced are flushed; nothing more is read.
    for (Conn* c : conns_)
      if (c && !c->closed) {
        c->eof = true;
        Run(c, 0);
      }
  }

  void Close(Conn* c) {
    c->closed = true;
    conns_[c->fd] = nullptr;
    close(c->fd);  // also removes it from the epoll set
    live_--;
    stats_.active.fetch_sub(1, std::memory_order_relaxed);
    graveyard_.push_back(c);
  }

  // Flush, then read until the socket is drained (edge-triggered), answering
  // as input comes. A short read means drained: the next arrival raises a new
  // edge, so the extra recv() that would return EAGAIN is skipped, unless the
  // peer has closed (EPOLLRDHUP: the end of file must still be read).
  void Run(Conn* c, uint32_t events) {
    const bool read_to_eagain = events & (EPOLLRDHUP | EPOLLHUP);
    bool drained = false;
    for (int reads = 0;;) {
      while (c->out_off < c->out.size()) {
        ssize_t n = send(c->fd, c->out.data() + c->out_off, c->out.size() - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
          c->out_off += n;
          stats_.bytes_out.fetch_add(n, std::memory_order_relaxed);
        } else if (errno == EAGAIN) {
          return;  // EPOLLOUT (edge) brings us back
        } else if (errno != EINTR) {
          stats_.errors.fetch_add(1, std::memory_order_relaxed);
          return Close(c);
        }
      }
      c->out.clear();
      c->out_off = 0;
      if (c->close_after && !c->draining) {
        shutdown(c->fd, SHUT_WR);
        c->draining = true;
      }
      if (c->eof) return Close(c);
      if (drained) return;
      if (reads++ == kReadsPerTurn) {
        if (!c->queued) {
          c->queued = true;
          again_.push_back(c);
        }
        return;
      }
      ssize_t n = recv(c->fd, buf_.get(), kReadBuf, 0);
      if (n > 0) {
        stats_.bytes_in.fetch_add(n, std::memory_order_relaxed);
        drained = static_cast<size_t>(n) < kReadBuf && !read_to_eagain;
        if (c->close_after) continue;  // input after the last response is dropped
        if (protocol_ == kEcho) {
          stats_.requests.fetch_add(1, std::memory_order_relaxed);
          ssize_t s = send(c->fd, buf_.get(), n, MSG_NOSIGNAL);
          if (s < 0) {
            if (errno != EAGAIN && errno != EINTR) {
              stats_.errors.fetch_add(1, std::memory_order_relaxed);
              return Close(c);
            }
            s = 0;
          }
          stats_.bytes_out.fetch_add(s, std::memory_order_relaxed);
          if (s < n) c->out.append(buf_.get() + s, n - s);
        } else {
          c->in.append(buf_.get(), n);
          if (HandleHttp(c->in, c->out, stats_)) c->close_after = true;
        }
      } else if (n == 0) {
        c->eof = true;
      } else if (errno == EAGAIN) {
        return;
      } else if (errno != EINTR) {
        if (errno != ECONNRESET) stats_.errors.fetch_add(1, std::memory_order_relaxed);
        return Close(c);
      }
    }
  }

  Protocol protocol_;
  ServerStats& stats_;
  int grace_ms_;
  int listen_fd_ = -1;
  int64_t accept_resume_ = 0;  // > 0: accepting paused until then (NowMs)
  int ep_ = -1;
  int wake_ = -1;
  std::thread thread_;
  std::unique_ptr<char[]> buf_;
  std::vector<Conn*> conns_;  // by fd
  std::vector<Conn*> again_;
  std::vector<Conn*> graveyard_;
  size_t live_ = 0;
};


}  // namespace

std::unique_ptr<LabServer> NewEpollServer() { return std::make_unique<ReactorGroupServer<Reactor>>(); }

}  // namespace lab
}  // namespace iomux

#else  // not Linux: lab_serve.cc reports c-epoll as unavailable and never asks

namespace iomux {
namespace lab {
std::unique_ptr<LabServer> NewEpollServer() { return nullptr; }
}  // namespace lab
}  // namespace iomux

#endif
