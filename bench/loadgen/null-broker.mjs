// A "broker" that does almost nothing, to find the load generator's own ceiling: CONNACK every
// CONNECT, SUBACK every SUBSCRIBE (granted QoS 0), and forward the PUBLISH bytes of each read to
// every subscriber in one write. QoS 0 and MQTT 3.1.1 only (what bench/broker.mjs speaks); frames
// with mq's codec (dist/, `npm run build` first). Run: node bench/loadgen/null-broker.mjs (prints
// its port), or `node bench/broker.mjs --brokers null --only fan-in,fan-out`.
import net from 'node:net';
import { Framer } from '../../dist/protocol/index.js';

const CONNACK = Buffer.from([0x20, 2, 0, 0]);
const PINGRESP = Buffer.from([0xd0, 0]);
const subscribers = new Set();
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  const out = [];
  const framer = new Framer(4);
  const onFrame = (raw, hl) => {
    const type = raw[0] >> 4;
    if (type === 1) socket.write(CONNACK);
    else if (type === 8) {
      subscribers.add(socket);
      socket.write(Buffer.from([0x90, 3, raw[hl], raw[hl + 1], 0]));
    } else if (type === 3) out.push(Buffer.from(raw));
    else if (type === 12) socket.write(PINGRESP);
    return true;
  };
  socket.on('data', (chunk) => {
    framer.pushFrames(chunk, onFrame);
    if (out.length === 0) return;
    const bytes = Buffer.concat(out);
    out.length = 0;
    for (const sub of subscribers) sub.write(bytes);
  });
  socket.on('error', () => {});
  socket.on('close', () => subscribers.delete(socket));
});
server.listen(0, '127.0.0.1', () => console.log(`null broker listening on ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
