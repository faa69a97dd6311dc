// `threads`: one native thread per connection, blocking recv/send. The
// acceptor polls the listener and a wake pipe; each connection thread gets
// the configured stack size (pthread_attr_setstacksize) and is joined by the
// acceptor once it has finished, so stacks do not pile up.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "lab_server.h"
#include "posix_compat.h"

namespace iomux {
namespace lab {
namespace {

class ThreadsServer final : public LabServer {
 public:
  int Start(const ServeConfig& cfg, SysError* err) override {
    cfg_ = cfg;
    int rc = InitThreadAttr(&attr_, cfg.stack_kb);
    if (rc < 0) {
      *err = {rc, "pthread_attr_setstacksize"};
      return rc;
    }
    have_attr_ = true;
    listen_fd_ = ListenTcp(cfg.host, cfg.port, cfg.backlog, true, false, &port_, err);
    if (listen_fd_ < 0) return listen_fd_;
    if (PipeCloexec(wake_) < 0) {
      *err = {-errno, "pipe2"};
      return err->rc;
    }
    acceptor_ = std::thread(&ThreadsServer::AcceptLoop, this);
    return 0;
  }

  void Stop() override {
    if (acceptor_.joinable()) {
      char b = 1;
      (void)!write(wake_[1], &b, 1);
      acceptor_.join();
    }
    std::vector<pthread_t> done;
    {
      std::unique_lock<std::mutex> lk(mu_);
      // Readers see end-of-file; a thread busy with a request still sends its reply.
      for (int fd : conns_) shutdown(fd, SHUT_RD);
      cv_.wait_for(lk, std::chrono::milliseconds(cfg_.grace_ms), [&] { return live_ == 0; });
      if (live_ > 0) {
        for (int fd : conns_) shutdown(fd, SHUT_RDWR);  // a stuck send fails now
        cv_.wait(lk, [&] { return live_ == 0; });
      }
      done.swap(finished_);
    }
    for (pthread_t t : done) pthread_join(t, nullptr);
  }

  ~ThreadsServer() override {
    if (listen_fd_ >= 0) close(listen_fd_);
    for (int fd : wake_)
      if (fd >= 0) close(fd);
    if (have_attr_) pthread_attr_destroy(&attr_);
  }

 private:
  struct ConnArg {
    ThreadsServer* server;
    int fd;
  };

  void AcceptLoop() {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    for (;;) {
      int r = poll(p, 2, 1000);
      Reap();
      if (r < 0 && errno == EINTR) continue;
      if (p[1].revents) break;
      if (r <= 0 || !(p[0].revents & POLLIN)) continue;
      int fd = AcceptCloexec(listen_fd_, false);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
          stats.errors.fetch_add(1, std::memory_order_relaxed);
          poll(nullptr, 0, 10);  // let connections finish rather than spin
        }
        continue;
      }
      TuneAccepted(fd);
      stats.accepted.fetch_add(1, std::memory_order_relaxed);
      {
        std::lock_guard<std::mutex> lk(mu_);
        conns_.insert(fd);
        live_++;
      }
      pthread_t t;
      auto* arg = new ConnArg{this, fd};
      int rc = pthread_create(&t, &attr_, ConnMain, arg);
      if (rc != 0) {  // EAGAIN: out of threads or memory for stacks
        delete arg;
        stats.errors.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard<std::mutex> lk(mu_);
        conns_.erase(fd);
        close(fd);
        live_--;
        cv_.notify_all();
      }
    }
    close(listen_fd_);
    listen_fd_ = -1;
  }

  static void* ConnMain(void* p) {
    auto* arg = static_cast<ConnArg*>(p);
    ThreadsServer* s = arg->server;
    int fd = arg->fd;
    delete arg;
    s->stats.active.fetch_add(1, std::memory_order_relaxed);
    ServeBlocking(fd, s->cfg_.protocol, s->stats);
    s->stats.active.fetch_sub(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lk(s->mu_);
    s->conns_.erase(fd);
    close(fd);  // under the lock: Stop() never shuts down a reused fd number
    s->finished_.push_back(pthread_self());
    s->live_--;
    s->cv_.notify_all();
    return nullptr;
  }

  // Joins the connection threads that have finished.
  void Reap() {
    std::vector<pthread_t> done;
    {
      std::lock_guard<std::mutex> lk(mu_);
      done.swap(finished_);
    }
    for (pthread_t t : done) pthread_join(t, nullptr);
  }

  ServeConfig cfg_;
  pthread_attr_t attr_;
  bool have_attr_ = false;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_set<int> conns_;
  std::vector<pthread_t> finished_;
  size_t live_ = 0;
};

}  // namespace

std::unique_ptr<LabServer> NewThreadsServer() { return std::make_unique<ThreadsServer>(); }

}  // namespace lab
}  // namespace iomux
