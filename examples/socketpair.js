// Opens every available backend and waits on a socketpair with each.
const { Poller, Interest, Mode, sys, backends } = require('iomux');

for (const { name, available, reason } of backends()) {
  if (!available) { console.log(`${name.padEnd(8)} unavailable: ${reason}`); continue; }
  const p = new Poller(name);
  const [a, b] = sys.socketpair();
  p.add(a, Interest.READABLE, Mode.LEVEL);
  sys.write(b, Buffer.from('ping'));
  const t = process.hrtime.bigint();
  const n = p.wait(100);                       // ms; -1 forever, 0 poll
  const us = Number(process.hrtime.bigint() - t) / 1e3;
  console.log(`${name.padEnd(8)} ${n} event(s): fd ${p.events[0]} readable=${(p.events[1] & Interest.READABLE) !== 0} in ${us.toFixed(1)} µs`);
  p.close(); sys.close(a); sys.close(b);
}
