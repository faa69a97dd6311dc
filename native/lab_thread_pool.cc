// `thread-pool`: an acceptor thread and a fixed pool of blocking workers. A
// worker owns a connection until it ends; connections accepted while every
// worker is busy wait in a FIFO queue (their bytes wait in the kernel), which
// is what this architecture costs under many keep-alive connections.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "lab_server.h"
#include "posix_compat.h"

namespace iomux {
namespace lab {
namespace {

constexpr int kDefaultWorkers = 128;

class ThreadPoolServer final : public LabServer {
 public:
  int Start(const ServeConfig& cfg, SysError* err) override {
    cfg_ = cfg;
    listen_fd_ = ListenTcp(cfg.host, cfg.port, cfg.backlog, true, false, &port_, err);
    if (listen_fd_ < 0) return listen_fd_;
    if (PipeCloexec(wake_) < 0) {
      *err = {-errno, "pipe2"};
      return err->rc;
    }
    pthread_attr_t attr;
    int rc = InitThreadAttr(&attr, cfg.stack_kb);
    if (rc < 0) {
      *err = {rc, "pthread_attr_setstacksize"};
      return rc;
    }
    int n = cfg.threads > 0 ? cfg.threads : kDefaultWorkers;
    for (int i = 0; i < n; i++) {
      pthread_t t;
      rc = pthread_create(&t, &attr, WorkerMain, this);
      if (rc != 0) {
        pthread_attr_destroy(&attr);
        *err = {-rc, "pthread_create"};
        Stop();
        return -rc;
      }
      workers_.push_back(t);
    }
    pthread_attr_destroy(&attr);
    acceptor_ = std::thread(&ThreadPoolServer::AcceptLoop, this);
    return 0;
  }

  void Stop() override {
    if (acceptor_.joinable()) {
      char b = 1;
      (void)!write(wake_[1], &b, 1);
      acceptor_.join();
    }
    {
      std::unique_lock<std::mutex> lk(mu_);
      stopping_ = true;
      // Connections still waiting for a worker were never served: close them.
      for (int fd : queue_) close(fd);
      stats.queued.fetch_sub(queue_.size(), std::memory_order_relaxed);
      queue_.clear();
      for (int fd : busy_) shutdown(fd, SHUT_RD);
      work_cv_.notify_all();
      idle_cv_.wait_for(lk, std::chrono::milliseconds(cfg_.grace_ms), [&] { return busy_.empty(); });
      for (int fd : busy_) shutdown(fd, SHUT_RDWR);
    }
    for (pthread_t t : workers_) pthread_join(t, nullptr);
    workers_.clear();
  }

  ~ThreadPoolServer() override {
    if (listen_fd_ >= 0) close(listen_fd_);
    for (int fd : wake_)
      if (fd >= 0) close(fd);
  }

 private:
  void AcceptLoop() {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    for (;;) {
      int r = poll(p, 2, -1);
      if (r < 0 && errno == EINTR) continue;
      if (p[1].revents) break;
      if (r <= 0 || !(p[0].revents & POLLIN)) continue;
      int fd = AcceptCloexec(listen_fd_, false);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOMEM || errno == ENOBUFS) {
          stats.errors.fetch_add(1, std::memory_order_relaxed);
          poll(nullptr, 0, 10);
        }
        continue;
      }
      TuneAccepted(fd);
      stats.accepted.fetch_add(1, std::memory_order_relaxed);
      stats.queued.fetch_add(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lk(mu_);
      queue_.push_back(fd);
      work_cv_.notify_one();
    }
    close(listen_fd_);
    listen_fd_ = -1;
  }

  static void* WorkerMain(void* p) {
    static_cast<ThreadPoolServer*>(p)->Work();
    return nullptr;
  }

  void Work() {
    for (;;) {
      int fd;
      {
        std::unique_lock<std::mutex> lk(mu_);
        work_cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping
        fd = queue_.front();
        queue_.pop_front();
        busy_.insert(fd);
      }
      stats.queued.fetch_sub(1, std::memory_order_relaxed);
      stats.active.fetch_add(1, std::memory_order_relaxed);
      ServeBlocking(fd, cfg_.protocol, stats);
      stats.active.fetch_sub(1, std::memory_order_relaxed);
      std::lock_guard<std::mutex> lk(mu_);
      busy_.erase(fd);
      close(fd);  // under the lock: Stop() never shuts down a reused fd number
      if (busy_.empty()) idle_cv_.notify_all();
    }
  }

  ServeConfig cfg_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread acceptor_;
  std::vector<pthread_t> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_, idle_cv_;
  std::deque<int> queue_;
  std::unordered_set<int> busy_;
  bool stopping_ = false;
};

}  // namespace

std::unique_ptr<LabServer> NewThreadPoolServer() { return std::make_unique<ThreadPoolServer>(); }

}  // namespace lab
}  // namespace iomux
