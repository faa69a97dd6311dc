// The lab's architectures: one file each in lib/arch/, one row each here.
// `iomux serve --arch NAME` and the conformance tests (test/lab-serve.test.ts)
// read this table; adding an arch = its file + one row.
import type { Arch } from './types';
import { threadsArch } from './threads';
import { threadPoolArch } from './thread-pool';
import { cEpollArch } from './c-epoll';
import { cUringArch } from './c-uring';
import { nodeNetArch } from './node-net';
import { reactorArch } from './reactor';
import { proactorArch } from './proactor';
import { reactorPoolArch } from './reactor-pool';
import { multiReactorArch, multiReactorExclusiveArch } from './multi-reactor';

export const ARCHS: readonly Arch[] = [
  threadsArch,
  threadPoolArch,
  cEpollArch,
  cUringArch,
  nodeNetArch,
  reactorArch,
  proactorArch,
  reactorPoolArch,
  multiReactorArch,
  multiReactorExclusiveArch,
];

export function findArch(name: string): Arch | undefined {
  return ARCHS.find((a) => a.name === name);
}

export type { Arch, Availability, RunningServer, ServeOptions, ServeOptionName, ServerStats } from './types';
