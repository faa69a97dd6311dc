// An echo server on the iomux EventLoop, on a backend chosen by a string.
//   node examples/echo-server.js [select|poll|epoll|kqueue|io_uring] [port] [seconds]
const { EventLoop, listenTcp } = require('iomux');

const [backend = 'epoll', port = '7000', seconds = '0'] = process.argv.slice(2);
const loop = new EventLoop(backend);
const server = listenTcp(loop, { port: Number(port) }, (conn) => {
  conn.ondata = (chunk) => {
    if (!conn.write(chunk)) conn.pause(); // backpressure: stop reading until drained
  };
  conn.ondrain = () => conn.resume();
  conn.onerror = (err) => console.error(`fd ${conn.fd}: ${err.code}`);
});
if (Number(seconds) > 0) loop.setTimeout(() => loop.stop(), Number(seconds) * 1000);
console.log(`echo server on ${server.address.address}:${server.port} (${loop.backend})`);
loop.run().then(() => console.log('stopped', loop.stats.toJSON()));
