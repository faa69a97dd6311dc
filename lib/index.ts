// iomux: the OS I/O multiplexers from Node.js.
import * as sys from './sys';

export { sys };
export { Poller, Interest, Mode, backends, defaultBackend, UnsupportedModeError, BACKEND_NAMES } from './poller';
export type { BackendName, BackendStatus, ModeSupport, Support, PollerOptions } from './poller';
export { ErrnoError, errnoName } from './errors';
