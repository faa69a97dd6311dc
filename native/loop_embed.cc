// Embedded mode for lib/loop.ts: lets Node's own libuv loop drive an
// EventLoop, so that iomux callbacks interleave with setTimeout, promises
// and `net` in the same thread.
//
//  - Backends with a pollable fd (epoll, kqueue, io_uring): a uv_poll_t
//    watches that fd for readability; when it fires, JS runs one
//    non-blocking iteration.
//  - select and poll have no such fd: a helper thread blocks in poll(2) on a
//    copy of the interest set (handed over by arm()), and when anything is
//    ready it disarms itself and wakes the JS thread through a uv_async_t.
//    JS runs the real backend's wait(0), then re-arms the helper.
//  - An optional uv_prepare_t calls JS before every blocking poll of Node's
//    loop (the LoopHooks.onPrepare contract: a Ring submits its SQEs there).
//
// Every method returns 0 or -errno; lib/loop.ts turns those into errors.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "clock.h"
#include "exports.h"
#include "js_util.h"

namespace iomux {
namespace {

// The libuv handles live here, apart from the JS object, because uv_close
// finishes later (in a close callback) than the JS object may live.
struct Handles {
  uv_poll_t poll;
  uv_async_t async;
  uv_prepare_t prepare;
  int open = 0;  // handles initialised and not yet closed
  void* owner = nullptr;  // the LoopEmbed, or nullptr once it let go
  // Set when Node tears the environment down (a worker exits): the addon may
  // be unloaded right after, so Node must wait until our close callbacks ran.
  napi_async_cleanup_hook_handle cleanup = nullptr;
};

void OnHandleClosed(uv_handle_t* h) {
  Handles* hs = static_cast<Handles*>(h->data);
  if (--hs->open > 0) return;
  if (hs->cleanup != nullptr) napi_remove_async_cleanup_hook(hs->cleanup);
  delete hs;
}

// The helper thread of the select/poll backends. It owns nothing the JS side
// can free while it runs: Stop() joins it before the handles are closed.
class Helper {
 public:
  Helper(uv_async_t* async) : async_(async) {}

  int Start() {
    if (pipe(ctrl_) != 0) return -errno;
    for (int fd : ctrl_) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    thread_ = std::thread([this] { Run(); });
    return 0;
  }

  // Replaces the interest set and arms the helper: the next time one of
  // these fds is ready, it signals once and disarms itself.
  void Arm(const int32_t* pairs, int count) {
    std::lock_guard<std::mutex> lk(mu_);
    set_.resize(count);
    for (int i = 0; i < count; i++) {
      uint32_t interest = static_cast<uint32_t>(pairs[2 * i + 1]);
      set_[i].fd = pairs[2 * i];
      set_[i].events = static_cast<short>(((interest & 1) ? POLLIN : 0) | ((interest & 2) ? POLLOUT : 0));
      set_[i].revents = 0;
    }
    armed_ = true;
    gen_++;
    Kick();
    cv_.notify_all();
  }

  // Disarms, and returns only once the helper is out of poll(2): after
  // this, no fd is referenced by the helper and closing one releases it.
  void Disarm() {
    std::unique_lock<std::mutex> lk(mu_);
    armed_ = false;
    gen_++;
    if (polling_) {
      Kick();
      cv_.wait(lk, [this] { return !polling_; });
    }
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
      Kick();
      cv_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    for (int& fd : ctrl_) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }

  uint64_t signals() const { return signals_; }

 private:
  void Kick() {
    if (!polling_) return;
    char b = 1;
    ssize_t rc = write(ctrl_[1], &b, 1);
    (void)rc;  // EAGAIN: a kick is already pending
  }

  void Run() {
    std::vector<pollfd> local;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return quit_ || armed_; });
      if (quit_) break;
      uint64_t gen = gen_;
      local.resize(set_.size() + 1);
      local[0] = pollfd{ctrl_[0], POLLIN, 0};
      for (size_t i = 0; i < set_.size(); i++) local[i + 1] = set_[i];
      polling_ = true;
      lk.unlock();
      int n = poll(local.data(), local.size(), -1);
      int err = n < 0 ? errno : 0;
      lk.lock();
      polling_ = false;
      cv_.notify_all();
      if (quit_) break;
      if (local[0].revents) {
        char buf[64];
        while (read(ctrl_[0], buf, sizeof buf) > 0) {
        }
      }
      if (n < 0 && err == EINTR) continue;
      bool ready = n < 0;  // a poll(2) failure: let JS find out through its own wait
      for (size_t i = 1; i < local.size() && !ready; i++) ready = local[i].revents != 0;
      if (ready && armed_ && gen == gen_) {
        armed_ = false;
        signals_++;
        uv_async_send(async_);
      }
    }
  }

  uv_async_t* async_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<pollfd> set_;
  int ctrl_[2] = {-1, -1};
  bool armed_ = false, polling_ = false, quit_ = false;
  uint64_t gen_ = 0;
  uint64_t signals_ = 0;
};

class LoopEmbed : public Napi::ObjectWrap<LoopEmbed> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LoopEmbed",
                       {
                           InstanceMethod<&LoopEmbed::PollFd>("pollFd"),
                           InstanceMethod<&LoopEmbed::StartThread>("startThread"),
                           InstanceMethod<&LoopEmbed::Arm>("arm"),
                           InstanceMethod<&LoopEmbed::Disarm>("disarm"),
                           InstanceMethod<&LoopEmbed::Prepare>("prepare"),
                           InstanceMethod<&LoopEmbed::Ref>("ref"),
                           InstanceMethod<&LoopEmbed::Close>("close"),
                           InstanceMethod<&LoopEmbed::Signals>("signals"),
                       });
  }

  // new LoopEmbed(onready(status), onprepare())
  explicit LoopEmbed(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<LoopEmbed>(info), context_(info.Env(), "iomux.EventLoop") {
    onready_ = Napi::Persistent(info[0].As<Napi::Function>());
    onprepare_ = Napi::Persistent(info[1].As<Napi::Function>());
  }

  ~LoopEmbed() override { Shutdown(nullptr); }

 private:
  uv_loop_t* Loop(Napi::Env env) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) return nullptr;
    return loop;
  }

  int Begin(Napi::Env env) {
    if (hs_ != nullptr) return -EALREADY;
    uv_loop_t* loop = Loop(env);
    if (loop == nullptr) return -ENOSYS;
    hs_ = new Handles();
    hs_->owner = this;
    uv_prepare_init(loop, &hs_->prepare);
    hs_->prepare.data = hs_;
    uv_unref(reinterpret_cast<uv_handle_t*>(&hs_->prepare));
    hs_->open = 1;
    env_ = env;
    napi_add_async_cleanup_hook(env, CleanupHook, this, &cleanup_);
    return 0;
  }

  // pollFd(fd): watch fd (the backend's pollable fd) for readability.
  Napi::Value PollFd(const Napi::CallbackInfo& info) {
    int rc = Begin(info.Env());
    if (rc < 0) return Num(info.Env(), rc);
    rc = uv_poll_init(Loop(info.Env()), &hs_->poll, Int(info, 0, -1));
    if (rc == 0) {
      hs_->open++;
      hs_->poll.data = hs_;
      main_ = reinterpret_cast<uv_handle_t*>(&hs_->poll);
      rc = uv_poll_start(&hs_->poll, UV_READABLE, OnPoll);
    }
    if (rc < 0) Shutdown(nullptr);
    return Num(info.Env(), rc);
  }

  // startThread(): the helper-thread variant (select, poll).
  Napi::Value StartThread(const Napi::CallbackInfo& info) {
    int rc = Begin(info.Env());
    if (rc < 0) return Num(info.Env(), rc);
    rc = uv_async_init(Loop(info.Env()), &hs_->async, OnAsync);
    if (rc == 0) {
      hs_->open++;
      hs_->async.data = hs_;
      main_ = reinterpret_cast<uv_handle_t*>(&hs_->async);
      helper_ = new Helper(&hs_->async);
      rc = helper_->Start();
    }
    if (rc < 0) Shutdown(nullptr);
    return Num(info.Env(), rc);
  }

  // arm(Int32Array of (fd, interest) pairs, count)
  Napi::Value Arm(const Napi::CallbackInfo& info) {
    if (helper_ == nullptr) return Num(info.Env(), -EBADF);
    uint8_t* data;
    size_t len;
    if (!info[0].IsTypedArray() || !GetBytes(info[0], &data, &len)) return Num(info.Env(), -EINVAL);
    int count = Int(info, 1);
    if (count < 0 || static_cast<size_t>(count) * 2 * sizeof(int32_t) > len)
      return Num(info.Env(), -EINVAL);
    helper_->Arm(reinterpret_cast<int32_t*>(data), count);
    return Num(info.Env(), 0);
  }

  Napi::Value Disarm(const Napi::CallbackInfo& info) {
    if (helper_ != nullptr) helper_->Disarm();
    return Num(info.Env(), 0);
  }

  // prepare(on): call onprepare() before every blocking poll of Node's loop.
  Napi::Value Prepare(const Napi::CallbackInfo& info) {
    if (hs_ == nullptr) return Num(info.Env(), -EBADF);
    if (info[0].ToBoolean())
      uv_prepare_start(&hs_->prepare, OnPrepare);
    else
      uv_prepare_stop(&hs_->prepare);
    return Num(info.Env(), 0);
  }

  // ref(on): whether the attached loop keeps Node's process alive.
  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (main_ == nullptr) return Num(info.Env(), -EBADF);
    if (info[0].ToBoolean())
      uv_ref(main_);
    else
      uv_unref(main_);
    return Num(info.Env(), 0);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown(nullptr);
    return info.Env().Undefined();
  }

  Napi::Value Signals(const Napi::CallbackInfo& info) {
    return Num(info.Env(), helper_ ? static_cast<double>(helper_->signals()) : 0);
  }

  // from_hook: Node is tearing the environment down and waits for `from_hook`
  // to be removed, which the last close callback does.
  void Shutdown(napi_async_cleanup_hook_handle from_hook) {
    if (helper_ != nullptr) {
      helper_->Stop();
      delete helper_;
      helper_ = nullptr;
    }
    if (hs_ == nullptr) return;
    if (from_hook != nullptr) {
      hs_->cleanup = from_hook;
    } else if (cleanup_ != nullptr) {
      napi_remove_async_cleanup_hook(cleanup_);
    }
    cleanup_ = nullptr;
    hs_->owner = nullptr;
    uv_prepare_stop(&hs_->prepare);
    uv_close(reinterpret_cast<uv_handle_t*>(&hs_->prepare), OnHandleClosed);
    if (main_ != nullptr) {
      if (main_ == reinterpret_cast<uv_handle_t*>(&hs_->poll)) uv_poll_stop(&hs_->poll);
      uv_close(main_, OnHandleClosed);
    }
    main_ = nullptr;
    hs_ = nullptr;
  }

  static void CleanupHook(napi_async_cleanup_hook_handle handle, void* arg) {
    static_cast<LoopEmbed*>(arg)->Shutdown(handle);
  }

  void Call(Napi::FunctionReference& fn, int status) {
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    napi_value argv[1] = {Napi::Number::New(env, status)};
    napi_value result;
    napi_status st = napi_make_callback(env, context_, Value(), fn.Value(), 1, argv, &result);
    if (st == napi_pending_exception || env.IsExceptionPending()) {
      // An exception thrown by an iomux callback: the same fate as one
      // thrown by any Node callback ('uncaughtException', else exit).
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    }
  }

  static LoopEmbed* OwnerOf(uv_handle_t* h) {
    return static_cast<LoopEmbed*>(static_cast<Handles*>(h->data)->owner);
  }
  static void OnPoll(uv_poll_t* h, int status, int events) {
    LoopEmbed* self = OwnerOf(reinterpret_cast<uv_handle_t*>(h));
    if (self == nullptr) return;
    // An error (the fd went bad) would fire again at once: stop, let JS decide.
    if (status < 0) uv_poll_stop(h);
    self->Call(self->onready_, status);
  }
  static void OnAsync(uv_async_t* h) {
    LoopEmbed* self = OwnerOf(reinterpret_cast<uv_handle_t*>(h));
    if (self != nullptr) self->Call(self->onready_, 0);
  }
  static void OnPrepare(uv_prepare_t* h) {
    LoopEmbed* self = OwnerOf(reinterpret_cast<uv_handle_t*>(h));
    if (self != nullptr) self->Call(self->onprepare_, 0);
  }

  Napi::FunctionReference onready_, onprepare_;
  Napi::AsyncContext context_;
  napi_env env_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_ = nullptr;
  Handles* hs_ = nullptr;
  uv_handle_t* main_ = nullptr;
  Helper* helper_ = nullptr;
};

Napi::Value MonotonicMsJs(const Napi::CallbackInfo& info) { return Num(info.Env(), NowMs()); }

}  // namespace

void InitLoopEmbed(Napi::Env env, Napi::Object exports) {
  exports.Set("LoopEmbed", LoopEmbed::Define(env));
  exports.Set("monotonicMs", Napi::Function::New<MonotonicMsJs>(env, "monotonicMs"));
}

}  // namespace iomux
