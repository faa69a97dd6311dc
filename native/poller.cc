// The native Poller object: a thin wrapper that owns one Backend. Returns
// 0 / counts / -errno; lib/poller.ts turns -errno into ErrnoError.
#include <sys/select.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <memory>
#include <string>

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
    return info.Env().Undefined();
  }
  Napi::Value PollableFd(const Napi::CallbackInfo& info) {
    return Num(info.Env(), backend_ ? backend_->PollableFd() : -1);
  }
  Napi::Value FailedSyscall(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), backend_ ? backend_->failed_syscall() : "");
  }
  Napi::Value Interrupted(const Napi::CallbackInfo& info) {
    return Num(info.Env(), backend_ ? static_cast<double>(backend_->interrupted()) : 0);
  }

  std::unique_ptr<Backend> backend_;
};

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
