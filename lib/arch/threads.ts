// `threads`: one native thread per connection, blocking recv/send
// (native/lab_threads.cc). --stack-kb sets each thread's stack size.
import { nativeArch } from './native-server';

export const threadsArch = nativeArch(
  'threads',
  'native thread per connection, blocking I/O (--stack-kb sets the stack size)',
  ['stackKb'],
);
