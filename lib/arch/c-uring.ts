// `c-uring`: the C reference proactor on io_uring: multishot accept, multishot
// recv into a provided buffer ring, send (native/lab_uring.cc).
import { nativeArch } from './native-server';

export const cUringArch = nativeArch(
  'c-uring',
  'C reference proactor: io_uring multishot accept + recv with provided buffers, one thread (--threads N)',
  ['threads'],
);
