// `thread-pool`: a native acceptor and a fixed pool of blocking workers; a
// worker owns a connection until it closes, later connections wait in a
// queue (native/lab_thread_pool.cc).
import { nativeArch } from './native-server';

export const threadPoolArch = nativeArch(
  'thread-pool',
  'native acceptor + fixed pool of blocking workers (--threads N, default 128); extra connections queue',
  ['threads', 'stackKb'],
);
