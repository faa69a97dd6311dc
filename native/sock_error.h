// libkqueue (kqueue on Linux, IOMUX_KQUEUE=libkqueue) reads a socket's
// pending error with getsockopt(SO_ERROR) when epoll reports EPOLLERR, and
// that clears it: the ECONNREFUSED of a failed connect or the ECONNRESET of a
// reset would be lost to the SO_ERROR, read() or write() the program makes
// next, where a BSD kernel still has it. The kqueue backend keeps the error
// it was handed (in the kevent's fflags) here, and sys.cc gives it out once,
// as the kernel would have. Without IOMUX_LIBKQUEUE this is all no-ops.
#pragma once

namespace iomux {
#ifdef IOMUX_LIBKQUEUE
// Remembers `err` for the socket `fd` (ignored for anything but a socket).
void KeepSocketError(int fd, int err);
// The kept error for fd (positive errno), once; 0 when there is none or the
// fd now names another file. For a read, EPIPE stays kept: Linux sets it on
// a reset that follows the peer's FIN, and read() then returns EOF first.
int TakeSocketError(int fd, bool reading = false);
void ForgetSocketError(int fd);
#else
inline int TakeSocketError(int, bool = false) { return 0; }
inline void ForgetSocketError(int) {}
#endif
}  // namespace iomux
