// Embedded mode: Node's own loop drives the iomux loop, so iomux callbacks
// interleave with Node's timers, promises and sockets in one thread.
//   node examples/embedded.js [backend]
const net = require('node:net');
const { EventLoop, listenTcp } = require('iomux');

const loop = new EventLoop(process.argv[2] || 'poll').attach();
let t0 = performance.now();
const log = (what) => console.log(`${(performance.now() - t0).toFixed(1).padStart(6)} ms  ${what}`);

// An iomux TCP server...
const server = listenTcp(loop, {}, (conn) => {
  conn.ondata = async (chunk) => {
    log(`iomux server got ${JSON.stringify(chunk.toString())}`); // a Buffer view, reused after return
    await null;
    conn.end(`echo: ${chunk}`);
  };
});
// ...a Node client talking to it...
const client = net.connect(server.port, '127.0.0.1', () => client.write('hi from node:net'));
client.on('data', (d) => log(`node client got ${JSON.stringify(d.toString())}`));
client.on('close', () => {
  log('node client closed');
  server.close();
  loop.detach(); // nothing else keeps the process up: it exits
});
// ...and timers of both kinds.
setTimeout(() => log('node setTimeout 5'), 5);
loop.setTimeout(() => log('iomux setTimeout 10'), 10);
setTimeout(() => log('node setTimeout 15'), 15);
Promise.resolve().then(() => log('promise job'));
t0 = performance.now(); // count from here: setting up took a few ms
