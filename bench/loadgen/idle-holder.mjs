// One process of the scale scenario's idle connections (bench/loadgen/scale.mjs): opens COUNT
// MQTT 3.1.1 connections to 127.0.0.1:PORT from source address LOCAL (mq bench's engine, conn
// mode, keepalive 300 s: nothing is sent while they are held), prints one JSON line
// {connected, failed, open, firstError} when they are up, holds them until stdin closes, then
// disconnects and exits. Several such processes hold more connections than one process's
// open-file limit allows, and each source address has its own range of ephemeral ports.
//
//   node bench/loadgen/idle-holder.mjs PORT COUNT LOCAL PREFIX
import { BenchSession } from '../../dist/bench/index.js';

const [port, count, localAddress, prefix] = process.argv.slice(2);
const session = await BenchSession.open({
  mode: 'conn',
  target: { transport: 'mqtt', host: '127.0.0.1', port: Number(port), localAddress },
  version: 4,
  clients: Number(count),
  connectConcurrency: 200,
  keepalive: 300,
  workers: 0,
  clientIdPrefix: prefix,
});
process.stdout.write(`${JSON.stringify(session.connectionCounts)}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  const report = await session.close();
  const firstError = Object.keys(report.errors)[0];
  process.stdout.write(`${JSON.stringify({ closed: true, errors: report.errors, firstError })}\n`);
  process.exit(0);
});
