// A "broker" that does almost nothing, to find the load generator's own ceiling: CONNACK every
// CONNECT, SUBACK every SUBSCRIBE (granted QoS 0), and forward the PUBLISH bytes of each read to
// every subscriber in one write. QoS 0 only. Run: node bench/loadgen/null-broker.mjs (prints its
// port), or `node bench/broker.mjs --brokers null --only fan-in,fan-out`.
import net from 'node:net';
import { Framer } from './mqtt-bytes.mjs';

const subscribers = new Set();
const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  const out = [];
  const framer = new Framer((b0, data, s, e) => {
    const type = b0 >> 4;
    if (type === 1) socket.write(Buffer.from([0x20, 2, 0, 0]));
    else if (type === 8) {
      subscribers.add(socket);
      socket.write(Buffer.from([0x90, 3, data[s], data[s + 1], 0]));
    } else if (type === 3) {
      // The packet starts one type byte and the remaining-length varint before its body.
      const rl = e - s;
      const varintLen = rl < 128 ? 1 : rl < 16_384 ? 2 : rl < 2_097_152 ? 3 : 4;
      out.push(Buffer.from(data.subarray(s - varintLen - 1, e)));
    } else if (type === 12) socket.write(Buffer.from([0xd0, 0]));
  });
  socket.on('data', (chunk) => {
    framer.push(chunk, 0, chunk.length);
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
