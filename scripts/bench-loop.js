#!/usr/bin/env node
// Per-iteration cost of the EventLoop's ways of running, on one backend.
// Every iteration finds exactly one ready fd (a socket with one unread byte,
// level-triggered), so the figures are the loop's own overhead plus one
// wait syscall and one callback.
//   node scripts/bench-loop.js [backend] [iterations]
'use strict';
const path = require('node:path');
const { EventLoop, Poller, Interest, sys } = require(path.join(__dirname, '..', 'dist'));

const backend = process.argv[2] || 'epoll';
const N = Number(process.argv[3] || 200000);

function setup() {
  const [a, b] = sys.socketpair();
  sys.write(b, Buffer.from('x')); // never read: always readable
  return { a, b };
}

// Wall time and CPU time (user + system) of the process: on a busy machine
// the CPU time is the steadier of the two.
function clock() {
  const c = process.cpuUsage();
  return { wall: process.hrtime.bigint(), cpu: (c.user + c.system) * 1000 };
}
function since(t0) {
  const t = clock();
  return { wall: Number(t.wall - t0.wall), cpu: t.cpu - t0.cpu };
}
function report(name, t) {
  console.log(`${name.padEnd(44)} ${(t.wall / N).toFixed(0).padStart(6)} ns wall  ${(t.cpu / N).toFixed(0).padStart(6)} ns cpu  per iteration`);
}

function rawPoller() {
  const { a, b } = setup();
  const p = new Poller(backend);
  p.add(a, Interest.READABLE);
  let count = 0;
  const cb = () => count++;
  const t0 = clock();
  while (count < N) {
    const n = p.wait(-1);
    for (let i = 0; i < n; i++) cb(p.events[2 * i], p.events[2 * i + 1]);
  }
  const ns = since(t0);
  p.close();
  sys.close(a);
  sys.close(b);
  return ns;
}

async function loopRun(mode, asyncCallback) {
  const { a, b } = setup();
  const loop = new EventLoop(backend);
  let count = 0;
  let settled = 0;
  const w = loop.watch(
    a,
    Interest.READABLE,
    asyncCallback
      ? async () => {
          if (++count === N) loop.stop();
          await null;
          settled++;
        }
      : () => {
          if (++count === N) loop.stop();
        },
  );
  const t0 = clock();
  if (mode === 'sync') loop.runSync();
  else await loop.run({ drain: mode });
  const ns = since(t0);
  if (asyncCallback && mode !== 'sync' && settled < N - 1) throw new Error(`only ${settled} promise continuations ran`);
  const s = loop.stats;
  w.close();
  loop.close();
  sys.close(a);
  sys.close(b);
  return { ns, blocked: s.blockedNs / s.waitCalls, between: s.callbackNs / s.waitCalls };
}

(async () => {
  console.log(`backend ${backend}, ${N} iterations, node ${process.version}`);
  await loopRun('sync', false); // warm-up
  report('Poller.wait + dispatch, no EventLoop', rawPoller());
  for (const [label, mode, asyncCb] of [
    ['EventLoop.runSync()', 'sync', false],
    ["EventLoop.run({ drain: 'jobs' }) (default)", 'jobs', false],
    ["EventLoop.run({ drain: 'node' })", 'node', false],
    ["run({ drain: 'jobs' }), async callback", 'jobs', true],
    ["run({ drain: 'node' }), async callback", 'node', true],
  ]) {
    const r = await loopRun(mode, asyncCb);
    report(label, r.ns);
    console.log(`${''.padEnd(44)} (stats: ${r.blocked.toFixed(0)} ns in wait, ${r.between.toFixed(0)} ns between waits)`);
  }
})();
