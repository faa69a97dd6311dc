// The few Linux conveniences the native servers use, with a portable path
// for macOS and the BSDs: atomically close-on-exec sockets, pipes and
// accepted fds (two steps elsewhere), and send() that cannot raise SIGPIPE.
#pragma once
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace iomux {

// send() flag that turns SIGPIPE into EPIPE. macOS has none (SO_NOSIGPIPE is
// per socket); there Node ignores SIGPIPE for the whole process anyway.
#ifdef MSG_NOSIGNAL
constexpr int kSendNoSignal = MSG_NOSIGNAL;
#else
constexpr int kSendNoSignal = 0;
#endif

// Sets FD_CLOEXEC, and O_NONBLOCK when asked; closes fd and returns -1 with
// errno on failure, else fd.
inline int SetCloexecNonblock(int fd, bool nonblock) {
  if (fd < 0) return fd;
  int fl = nonblock ? fcntl(fd, F_GETFL) : 0;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fl < 0 || (nonblock && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

// socket(2), close-on-exec (and non-blocking when asked): fd, or -1 and errno.
inline int SocketCloexec(int domain, int type, bool nonblock) {
#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
  return socket(domain, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
#else
  return SetCloexecNonblock(socket(domain, type, 0), nonblock);
#endif
}

// accept(2) with the same guarantees.
inline int AcceptCloexec(int fd, bool nonblock) {
#ifdef __linux__
  return accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0));
#else
  return SetCloexecNonblock(accept(fd, nullptr, nullptr), nonblock);
#endif
}

// pipe(2), both ends close-on-exec: 0, or -1 and errno.
inline int PipeCloexec(int fds[2]) {
#ifdef __linux__
  return pipe2(fds, O_CLOEXEC);
#else
  if (pipe(fds) < 0) return -1;
  if (SetCloexecNonblock(fds[0], false) < 0) {
    int e = errno;
    close(fds[1]);
    errno = e;
    return -1;
  }
  return SetCloexecNonblock(fds[1], false) < 0 ? (close(fds[0]), -1) : 0;
#endif
}

}  // namespace iomux
