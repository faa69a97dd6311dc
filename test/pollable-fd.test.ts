// poller.fd, where a backend has one, is what embedded mode hands to Node's
// loop: it must become readable when (and only when) that Poller has events
// pending, never when another Poller does. (Under libkqueue this fd is found
// among several epoll sets: picking the wrong one left attach() deaf.)
import { afterEach, describe, expect, it } from 'vitest';
import { Poller, Interest, sys } from '../lib/index';
import { availableBackends } from './helpers';

const R = Interest.READABLE;
const withFd = availableBackends.filter((b) => {
  const p = new Poller(b);
  const has = p.fd >= 0;
  p.close();
  return has;
});
console.log(`pollable-fd: backends with a pollable fd here: ${withFd.join(', ') || 'none'}`);

describe.each(withFd)('%s poller.fd', (backend) => {
  const fds: number[] = [];
  const pollers: Poller[] = [];
  afterEach(() => {
    for (const p of pollers.splice(0)) p.close();
    for (const fd of fds.splice(0)) sys.close(fd);
  });

  it('is readable exactly while this Poller has events pending, and not for another Poller', () => {
    // Two Pollers of the backend, created and closed around others, so that
    // their fds sit next to other sets of the same kind.
    new Poller(backend).close();
    const mine = new Poller(backend);
    const other = new Poller(backend);
    const watcher = new Poller('poll');
    pollers.push(mine, other, watcher);
    const [r, w] = sys.pipe();
    const [r2, w2] = sys.pipe();
    fds.push(r, w, r2, w2);
    mine.add(r, R);
    other.add(r2, R);
    watcher.add(mine.fd, R);
    watcher.add(other.fd, R);
    const readyFds = (timeout: number) => {
      const n = watcher.wait(timeout);
      return Array.from({ length: n }, (_, i) => watcher.events[2 * i]).sort();
    };
    expect(readyFds(0)).toEqual([]);
    sys.write(w, Buffer.from('x'));
    expect(readyFds(1000)).toEqual([mine.fd]);
    expect(mine.wait(0)).toBe(1);
    expect(mine.events[0]).toBe(r);
    sys.read(r, Buffer.alloc(8));
    expect(mine.wait(0)).toBe(0);
    expect(readyFds(0)).toEqual([]);
    sys.write(w2, Buffer.from('y'));
    expect(readyFds(1000)).toEqual([other.fd]);
  });
});
