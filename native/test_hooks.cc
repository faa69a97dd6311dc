// Hooks for the reliability tests, never used by the library itself:
//  sys.denyIoUringForTests(errno): installs a seccomp filter in this process
//    (all threads) that fails io_uring_setup/enter/register with errno, the
//    way Docker's default profile does. Irreversible: call it only in a child
//    process. Returns 0 or -errno.
//  sys.sanitizerProbe(kind): only in sanitizer builds (IOMUX_SANITIZE=ON),
//    commits a deliberate heap overflow / use after free / signed overflow, so
//    that the test:asan run can prove the sanitizers are live.
#include <cerrno>
#include <climits>
#include <cstddef>
#include <string>

#ifdef __linux__
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "exports.h"
#include "js_util.h"

namespace iomux {
namespace {

#if defined(__linux__) && defined(__NR_io_uring_setup) && \
    (defined(__x86_64__) || defined(__aarch64__))
#if defined(__x86_64__)
constexpr uint32_t kArch = AUDIT_ARCH_X86_64;
#else
constexpr uint32_t kArch = AUDIT_ARCH_AARCH64;
#endif

int DenyIoUring(int err) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<uint32_t>(err) & SECCOMP_RET_DATA)),
  };
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) return -errno;
  return 0;
}
#else
int DenyIoUring(int) { return -ENOSYS; }
#endif

Napi::Value DenyIoUringForTests(const Napi::CallbackInfo& info) {
  int err = Int(info, 0, EPERM);
  if (err <= 0 || err > 4095) return Num(info.Env(), -EINVAL);
  return Num(info.Env(), DenyIoUring(err));
}

#ifdef IOMUX_SANITIZE_PROBES
Napi::Value SanitizerProbe(const Napi::CallbackInfo& info) {
  std::string kind = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (kind == "heap-buffer-overflow") {
    char* volatile p = new char[8];
    p[8] = 1;
    delete[] p;
  } else if (kind == "use-after-free") {
    char* volatile p = new char[8];
    delete[] p;
    p[0] = 1;
  } else if (kind == "signed-integer-overflow") {
    volatile int x = INT_MAX;
    volatile int y = x + 1;
    (void)y;
  }
  return info.Env().Undefined();
}
#endif

}  // namespace

void InitTestHooks(Napi::Env env, Napi::Object exports) {
  Napi::Object sys = exports.Get("sys").As<Napi::Object>();
  sys.Set("denyIoUringForTests", Napi::Function::New<DenyIoUringForTests>(env, "denyIoUringForTests"));
#ifdef IOMUX_SANITIZE_PROBES
  sys.Set("sanitizerProbe", Napi::Function::New<SanitizerProbe>(env, "sanitizerProbe"));
#endif
}

}  // namespace iomux
