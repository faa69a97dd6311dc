// Connected fd pairs for the property tests: pipes, Unix socketpairs and TCP
// pairs over 127.0.0.1 (TCP_NODELAY, so that a small write is delivered at
// once instead of waiting for a delayed ACK).
import * as sys from '../../lib/sys';

export type PairKind = 'pipe' | 'socketpair' | 'tcp';

export class TcpFactory {
  private listener = -1;
  private port = 0;

  pair(): [number, number] {
    if (this.listener < 0) {
      this.listener = sys.listenTcp('127.0.0.1', 0, { backlog: 64 });
      this.port = sys.getsockname(this.listener).port!;
    }
    const client = sys.socket('ipv4');
    const rc = sys.connect(client, '127.0.0.1', this.port);
    if (rc !== 0 && rc !== sys.EINPROGRESS) throw new Error(`connect to 127.0.0.1:${this.port} returned ${rc}`);
    let server = sys.EAGAIN;
    // Loopback completes the handshake inside connect(); the loop is a bound, not a wait for time.
    for (let i = 0; i < 1000 && server === sys.EAGAIN; i++) {
      server = sys.accept(this.listener);
      if (server === sys.EAGAIN) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    if (server < 0) throw new Error(`accept returned ${server}`);
    const err = sys.getsockopt(client, 'SO_ERROR');
    if (err !== 0) throw new Error(`connect failed: SO_ERROR ${err}`);
    sys.setsockopt(client, 'TCP_NODELAY', true);
    sys.setsockopt(server, 'TCP_NODELAY', true);
    return [client, server];
  }

  close(): void {
    if (this.listener >= 0) sys.close(this.listener);
    this.listener = -1;
  }
}

/** [a, b]: for a pipe, a is the read end and b the write end. */
export function makePair(kind: PairKind, tcp: TcpFactory): [number, number] {
  if (kind === 'pipe') return sys.pipe();
  if (kind === 'socketpair') return sys.socketpair();
  return tcp.pair();
}
