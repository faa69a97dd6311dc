// `c-epoll`: the C reference reactor, epoll edge-triggered, one thread
// (--threads N: N reactors on SO_REUSEPORT listeners) (native/lab_epoll.cc).
import { nativeArch } from './native-server';

export const cEpollArch = nativeArch(
  'c-epoll',
  'C reference reactor: epoll edge-triggered, one thread (--threads N: N reactors, SO_REUSEPORT)',
  ['threads'],
);
