// The native Poller object: a thin wrapper that owns one Backend. Returns
// 0 / counts / -errno; lib/poller.ts turns -errno into ErrnoError.
#include <sys/select.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "clock.h"
#include "exports.h"
#include "js_util.h"

namespace iomux {
namespace {

const char* SupportName(Support s) {
  return s == kNative ? "native" : s == kEmulated ? "emulated" : "unsupported";
}

class NativePoller : public Napi::ObjectWrap<NativePoller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativePoller",
                       {
                           InstanceMethod<&NativePoller::Add>("add"),
                           InstanceMethod<&NativePoller::Modify>("modify"),
                           InstanceMethod<&NativePoller::Remove>("remove"),
                           InstanceMethod<&NativePoller::Wait>("wait"),
                           InstanceMethod<&NativePoller::WaitUntil>("waitUntil"),
                           InstanceMethod<&NativePoller::Close>("close"),
                           InstanceMethod<&NativePoller::PollableFd>("pollableFd"),
                           InstanceMethod<&NativePoller::FailedSyscall>("failedSyscall"),
                           InstanceMethod<&NativePoller::Interrupted>("interrupted"),
                           InstanceMethod<&NativePoller::BindWait>("bindWait"),
                           InstanceMethod<&NativePoller::Adopt>("adopt"),
                       });
  }

  // new NativePoller(name): throws an Error carrying `errno` (negative) and
  // the reason when the backend cannot be created.
  explicit NativePoller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativePoller>(info) {
    std::string name = info[0].As<Napi::String>().Utf8Value();
    const BackendInfo* bi = FindBackend(name);
    if (bi == nullptr) {
      Napi::TypeError::New(info.Env(), "unknown backend").ThrowAsJavaScriptException();
      return;
    }
    int err = 0;
    std::string reason;
    backend_ = bi->create(&err, &reason);
    if (!backend_) {
      Napi::Error e = Napi::Error::New(info.Env(), reason);
      e.Set("errno", Num(info.Env(), err));
      e.ThrowAsJavaScriptException();
    }
  }
  // Adopted fds close with the Poller: on close(), when it is collected, and
  // when a worker thread's environment is torn down (JS cannot run then).
  ~NativePoller() override { CloseAdopted(); }

 private:
  Napi::Value Closed(Napi::Env env) { return Num(env, -EBADF); }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    if (!backend_) return Closed(info.Env());
    return Num(info.Env(), backend_->Add(Int(info, 0, -1), Int(info, 1), Int(info, 2)));
  }
  Napi::Value Modify(const Napi::CallbackInfo& info) {
    if (!backend_) return Closed(info.Env());
    return Num(info.Env(), backend_->Modify(Int(info, 0, -1), Int(info, 1), Int(info, 2)));
  }
  Napi::Value Remove(const Napi::CallbackInfo& info) {
    if (!backend_) return Closed(info.Env());
    return Num(info.Env(), backend_->Remove(Int(info, 0, -1)));
  }
  // wait(timeoutMs, Int32Array): pairs written, or -errno.
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    if (!backend_) return Closed(info.Env());
    uint8_t* data;
    size_t len;
    if (!info[1].IsTypedArray() || !GetBytes(info[1], &data, &len))
      return Num(info.Env(), -EINVAL);
    int capacity = static_cast<int>(len / (2 * sizeof(int32_t)));
    if (capacity <= 0) return Num(info.Env(), -EINVAL);
    return Num(info.Env(),
               backend_->Wait(Int(info, 0, -1), reinterpret_cast<int32_t*>(data), capacity));
  }
  // waitUntil(deadlineMs, Int32Array, Float64Array): like wait(), with an
  // absolute deadline on the NowMs() clock (-1 forever; a past deadline
  // polls). clock[0] and clock[1] receive NowMs() just before and just after
  // the wait, so the event loop needs no clock read of its own.
  Napi::Value WaitUntil(const Napi::CallbackInfo& info) {
    if (!backend_) return Closed(info.Env());
    uint8_t* data;
    size_t len;
    if (!info[1].IsTypedArray() || !GetBytes(info[1], &data, &len)) return Num(info.Env(), -EINVAL);
    int capacity = static_cast<int>(len / (2 * sizeof(int32_t)));
    if (capacity <= 0 || !info[2].IsTypedArray()) return Num(info.Env(), -EINVAL);
    Napi::TypedArray clock = info[2].As<Napi::TypedArray>();
    if (clock.TypedArrayType() != napi_float64_array || clock.ElementLength() < 2)
      return Num(info.Env(), -EINVAL);
    double* times = reinterpret_cast<double*>(static_cast<uint8_t*>(clock.ArrayBuffer().Data()) +
                                              clock.ByteOffset());
    double deadline = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    double before = NowMs();
    int timeout = -1;
    if (deadline >= 0) {
      double left = std::ceil(deadline - before);
      timeout = left <= 0 ? 0 : left >= INT_MAX ? INT_MAX : static_cast<int>(left);
    }
    int rc = backend_->Wait(timeout, reinterpret_cast<int32_t*>(data), capacity);
    times[0] = before;
    times[1] = NowMs();
    return Num(info.Env(), rc);
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    backend_.reset();
    CloseAdopted();
    return info.Env().Undefined();
  }
  // adopt(fd): the Poller closes fd with itself (the EventLoop's wakeup fds).
  Napi::Value Adopt(const Napi::CallbackInfo& info) {
    if (!backend_) return Closed(info.Env());
    int fd = Int(info, 0, -1);
    if (fd < 0) return Num(info.Env(), -EBADF);
    adopted_.push_back(fd);
    return Num(info.Env(), 0);
  }
  void CloseAdopted() {
    for (int fd : adopted_) close(fd);
    adopted_.clear();
  }
  std::vector<int> adopted_;
  Napi::Value PollableFd(const Napi::CallbackInfo& info) {
    return Num(info.Env(), backend_ ? backend_->PollableFd() : -1);
  }
  Napi::Value FailedSyscall(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), backend_ ? backend_->failed_syscall() : "");
  }
  Napi::Value Interrupted(const Napi::CallbackInfo& info) {
    return Num(info.Env(), backend_ ? static_cast<double>(backend_->interrupted()) : 0);
  }

  // Shared with the bound wait functions (BindWait): close() empties it for all.
  std::shared_ptr<std::unique_ptr<Backend>> holder_ = std::make_shared<std::unique_ptr<Backend>>();
  std::unique_ptr<Backend>& backend_ = *holder_;

  Napi::Value BindWait(const Napi::CallbackInfo& info);
};

// The hot path. wait() through ObjectWrap costs an unwrap (a private-property
// lookup) and a typed-array lookup per call; these functions are created once
// per Poller with everything they need in their data pointer, so one call is
// one napi_get_cb_info, one int read, the wait, and one int made.
struct BoundWait {
  std::shared_ptr<std::unique_ptr<Backend>> holder;
  int32_t* events = nullptr;
  int capacity = 0;
  double* times = nullptr;
  napi_ref events_ref = nullptr;
  napi_ref times_ref = nullptr;
  napi_ref buffers[2] = {nullptr, nullptr};  // the ArrayBuffers, to test for detachment
  bool check_detached = false;
};

bool Detached(napi_env env, const BoundWait* b) {
  if (!b->check_detached) return false;
  for (napi_ref r : b->buffers) {
    napi_value ab;
    bool detached = false;
    if (napi_get_reference_value(env, r, &ab) != napi_ok || ab == nullptr) return true;
    if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || detached) return true;
  }
  return false;
}

napi_value IntResult(napi_env env, int v) {
  napi_value out;
  napi_create_int32(env, v, &out);
  return out;
}

// fastWait(timeoutMs): pairs written to the bound events array, or -errno.
napi_value FastWait(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 1;
  napi_value argv[1];
  void* data;
  napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &data);
  auto* b = static_cast<BoundWait*>(data);
  int32_t ms = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &ms) != napi_ok) return IntResult(env, -EINVAL);
  Backend* backend = b->holder->get();
  if (backend == nullptr) return IntResult(env, -EBADF);
  if (Detached(env, b)) return IntResult(env, -EINVAL);
  return IntResult(env, backend->Wait(ms, b->events, b->capacity));
}

// fastWaitUntil(deadlineMs): as waitUntil() with the bound clock array.
napi_value FastWaitUntil(napi_env env, napi_callback_info cbinfo) {
  size_t argc = 1;
  napi_value argv[1];
  void* data;
  napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &data);
  auto* b = static_cast<BoundWait*>(data);
  double deadline = -1;
  if (argc < 1 || napi_get_value_double(env, argv[0], &deadline) != napi_ok) return IntResult(env, -EINVAL);
  Backend* backend = b->holder->get();
  if (backend == nullptr) return IntResult(env, -EBADF);
  if (Detached(env, b)) return IntResult(env, -EINVAL);
  double before = NowMs();
  int timeout = -1;
  if (deadline >= 0) {
    double left = std::ceil(deadline - before);
    timeout = left <= 0 ? 0 : left >= INT_MAX ? INT_MAX : static_cast<int>(left);
  }
  int rc = backend->Wait(timeout, b->events, b->capacity);
  b->times[0] = before;
  b->times[1] = NowMs();
  return IntResult(env, rc);
}

// bindWait(events: Int32Array, times: Float64Array, checkDetached: boolean)
//   -> [fastWait, fastWaitUntil]
Napi::Value NativePoller::BindWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray()) {
    Napi::TypeError::New(env, "bindWait(Int32Array, Float64Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::TypedArray ev = info[0].As<Napi::TypedArray>();
  Napi::TypedArray tm = info[1].As<Napi::TypedArray>();
  if (ev.TypedArrayType() != napi_int32_array || ev.ElementLength() < 2 ||
      tm.TypedArrayType() != napi_float64_array || tm.ElementLength() < 2) {
    Napi::TypeError::New(env, "bindWait(Int32Array, Float64Array)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  // Two functions share one BoundWait; it is freed when the second goes.
  auto shared = std::make_shared<BoundWait>();
  BoundWait* b = shared.get();
  b->holder = holder_;
  uint8_t* data;
  size_t len;
  GetBytes(ev, &data, &len);
  b->events = reinterpret_cast<int32_t*>(data);
  b->capacity = static_cast<int>(len / (2 * sizeof(int32_t)));
  GetBytes(tm, &data, &len);
  b->times = reinterpret_cast<double*>(data);
  b->check_detached = info[2].ToBoolean();
  napi_create_reference(env, ev, 1, &b->events_ref);
  napi_create_reference(env, tm, 1, &b->times_ref);
  napi_create_reference(env, ev.ArrayBuffer(), 1, &b->buffers[0]);
  napi_create_reference(env, tm.ArrayBuffer(), 1, &b->buffers[1]);
  Napi::Array out = Napi::Array::New(env, 2);
  napi_callback fns[2] = {FastWait, FastWaitUntil};
  const char* names[2] = {"fastWait", "fastWaitUntil"};
  for (int i = 0; i < 2; i++) {
    napi_value fn;
    napi_create_function(env, names[i], NAPI_AUTO_LENGTH, fns[i], b, &fn);
    // Each function owns a share; the last finalizer frees the BoundWait and its references.
    auto* keep = new std::shared_ptr<BoundWait>(shared);
    napi_add_finalizer(
        env, fn, keep,
        [](napi_env env, void* data, void*) {
          auto* keep = static_cast<std::shared_ptr<BoundWait>*>(data);
          if (keep->use_count() == 1) {
            BoundWait* b = keep->get();
            napi_delete_reference(env, b->events_ref);
            napi_delete_reference(env, b->times_ref);
            napi_delete_reference(env, b->buffers[0]);
            napi_delete_reference(env, b->buffers[1]);
          }
          delete keep;
        },
        nullptr, nullptr);
    out.Set(i, fn);
  }
  return out;
}


// backends(): [{ name, available, reason, modes: {level, edge, oneshot, exclusive} }]
Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n;
  const BackendInfo* const* all = AllBackends(&n);
  Napi::Array out = Napi::Array::New(env, n);
  for (int i = 0; i < n; i++) {
    const BackendInfo* bi = all[i];
    std::string reason;
    bool ok = bi->probe(&reason);
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", bi->name);
    o.Set("available", ok);
    if (!ok) o.Set("reason", reason);
    Napi::Object modes = Napi::Object::New(env);
    modes.Set("level", SupportName(bi->modes.level));
    modes.Set("edge", SupportName(bi->modes.edge));
    modes.Set("oneshot", SupportName(bi->modes.oneshot));
    modes.Set("exclusive", SupportName(bi->modes.exclusive));
    o.Set("modes", modes);
    out.Set(i, o);
  }
  return out;
}

}  // namespace

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("NativePoller", NativePoller::Define(env));
  exports.Set("backends", Napi::Function::New<Backends>(env, "backends"));
  exports.Set("FD_SETSIZE", Num(env, FD_SETSIZE));
}

}  // namespace iomux
