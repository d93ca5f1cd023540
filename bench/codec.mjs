#!/usr/bin/env node
// `npm run bench:codec`: mq's codec (dist/protocol, built by `npm run build`) against mqtt-packet,
// side by side in one process, on the same packets. The two alternate in short rounds (this machine is
// shared, so load must hit both alike); prints each side's median packets/s and the median of the
// per-round ratios mq / mqtt-packet, for:
//
//   parse     one packet's bytes -> packet object. mq: decode(buf, version); mqtt-packet:
//             parser.parse(buf) with a 'packet' listener (its per-socket-read use).
//   stream    a buffer of 100 back-to-back packets -> 100 objects. mq: Framer.push;
//             mqtt-packet: parser.parse(buf).
//   generate  packet object -> bytes. mq: encode(packet, version); mqtt-packet: generate(obj, opts).
//
// and, on the v4 1 KiB PUBLISH row only, a long stream of that packet as a socket delivers it:
//
//   64K cut   in 64 KiB chunks, so packets straddle chunk ends (most TCP reads of a busy link).
//   64K whole in chunks of the whole packets that fit in 64 KiB (each chunk ends on a packet end).
//
// Targets (issue 2): parse and stream >= 4x mqtt-packet on every row, >= 6x on the v5 rows;
// generate >= 2x on every row. Issue 9: 64K cut >= 5x (64K whole is there to compare it with).
//
//   node bench/codec.mjs [--json] [--only SUBSTRING] [--rounds N] [--round-ms MS] [--warmup-ms MS]
//
// Profile one row: node --cpu-prof bench/codec.mjs --only 'v5 PUBLISH QoS 0'
import { createRequire } from 'node:module';
import { parseFlags } from './args.mjs';

const require = createRequire(import.meta.url);
const mqtt = require('mqtt-packet');

let mq;
try {
  mq = await import('../dist/protocol/index.js');
} catch (err) {
  console.error(
    `bench/codec.mjs: cannot load dist/protocol/index.js (run \`npm run build\` first): ${err.message}`,
  );
  process.exit(1);
}

function parseArgs(argv) {
  const opts = { json: false, only: undefined, rounds: 15, roundMs: 40, warmupMs: 200 };
  parseFlags(argv, {
    usage:
      'usage: node bench/codec.mjs [--json] [--only SUBSTRING] [--rounds N] [--round-ms MS] [--warmup-ms MS]',
    switches: { '--json': () => (opts.json = true) },
    values: {
      '--only': (v) => (opts.only = v),
      '--rounds': (v) => (opts.rounds = Number(v)),
      '--round-ms': (v) => (opts.roundMs = Number(v)),
      '--warmup-ms': (v) => (opts.warmupMs = Number(v)),
    },
  });
  return opts;
}

// --- The packets: the same content for both codecs, in each one's object shape. ---

const payload16 = Buffer.from('0123456789abcdef');
const payload1k = Buffer.alloc(1024, 0x61);
const willPayload = Buffer.from('offline');
const password = Buffer.from('secret');

function rows() {
  const out = [];
  for (const version of [4, 5]) {
    const v5 = version === 5;
    const pubProps = v5
      ? { messageExpiryInterval: 60, contentType: 'application/json', userProperties: [['k', 'v']] }
      : undefined;
    const mpPubProps = v5
      ? { messageExpiryInterval: 60, contentType: 'application/json', userProperties: { k: 'v' } }
      : undefined;
    out.push({
      name: `v${version} PUBLISH QoS 0, 16 B`,
      version,
      mq: {
        type: 'PUBLISH',
        dup: false,
        qos: 0,
        retain: false,
        topic: 'sensors/room1/temp',
        payload: payload16,
        properties: pubProps,
      },
      mp: {
        cmd: 'publish',
        dup: false,
        qos: 0,
        retain: false,
        topic: 'sensors/room1/temp',
        payload: payload16,
        properties: mpPubProps,
      },
    });
    out.push({
      name: `v${version} PUBLISH QoS 1, 1 KiB`,
      version,
      chunked: version === 4,
      mq: {
        type: 'PUBLISH',
        dup: false,
        qos: 1,
        retain: false,
        topic: 'sensors/room1/log',
        packetId: 42,
        payload: payload1k,
        properties: pubProps,
      },
      mp: {
        cmd: 'publish',
        dup: false,
        qos: 1,
        retain: false,
        topic: 'sensors/room1/log',
        messageId: 42,
        payload: payload1k,
        properties: mpPubProps,
      },
    });
    out.push({
      name: `v${version} CONNECT, will + credentials`,
      version,
      mq: {
        type: 'CONNECT',
        protocolVersion: version,
        clean: true,
        keepalive: 60,
        clientId: 'bench-client-0001',
        will: {
          topic: 'clients/bench-client-0001/status',
          payload: willPayload,
          qos: 1,
          retain: true,
          properties: v5
            ? { messageExpiryInterval: 300, contentType: 'text/plain', userProperties: [['k', 'v']] }
            : undefined,
        },
        username: 'user',
        password,
        properties: v5 ? { sessionExpiryInterval: 3600, userProperties: [['app', 'bench']] } : undefined,
      },
      mp: {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: version,
        clean: true,
        keepalive: 60,
        clientId: 'bench-client-0001',
        will: {
          topic: 'clients/bench-client-0001/status',
          payload: willPayload,
          qos: 1,
          retain: true,
          properties: v5
            ? { messageExpiryInterval: 300, contentType: 'text/plain', userProperties: { k: 'v' } }
            : undefined,
        },
        username: 'user',
        password,
        properties: v5 ? { sessionExpiryInterval: 3600, userProperties: { app: 'bench' } } : undefined,
      },
    });
    const filters = [
      ['sensors/+/temperature', 1],
      ['alerts/#', 2],
      ['devices/abc/status', 0],
    ];
    out.push({
      name: `v${version} SUBSCRIBE, 3 filters`,
      version,
      mq: {
        type: 'SUBSCRIBE',
        packetId: 7,
        subscriptions: filters.map(([topicFilter, qos]) =>
          v5
            ? { topicFilter, qos, noLocal: false, retainAsPublished: true, retainHandling: 1 }
            : { topicFilter, qos },
        ),
        properties: v5 ? { subscriptionIdentifiers: [42], userProperties: [['k', 'v']] } : undefined,
      },
      mp: {
        cmd: 'subscribe',
        messageId: 7,
        subscriptions: filters.map(([topic, qos]) =>
          v5 ? { topic, qos, nl: false, rap: true, rh: 1 } : { topic, qos },
        ),
        properties: v5 ? { subscriptionIdentifier: 42, userProperties: { k: 'v' } } : undefined,
      },
    });
  }
  return out;
}

// --- Measurement ---

/** Runs `fn(n)` (which does n operations) for `ms` milliseconds; returns operations per second. */
function measure(fn, batch, ms) {
  let ops = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  do {
    fn(batch);
    ops += batch;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  return (ops * 1e9) / Number(elapsed);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Alternates mq and mqtt-packet in short rounds, so load from other processes on this shared machine
 * hits both alike. Returns each side's median packets/s and the median of the per-round ratios
 * (adjacent rounds share conditions, so their ratio is steadier than the ratio of medians).
 */
function compare(mqSide, mpSide, opts) {
  measure(mqSide.fn, mqSide.batch, opts.warmupMs);
  measure(mpSide.fn, mpSide.batch, opts.warmupMs);
  const mqRates = [];
  const mpRates = [];
  const ratios = [];
  for (let r = 0; r < opts.rounds; r++) {
    const a = measure(mqSide.fn, mqSide.batch, opts.roundMs) * (mqSide.perCall ?? 1);
    const b = measure(mpSide.fn, mpSide.batch, opts.roundMs) * (mpSide.perCall ?? 1);
    mqRates.push(a);
    mpRates.push(b);
    ratios.push(a / b);
  }
  return { mq: median(mqRates), mqttPacket: median(mpRates), ratio: median(ratios) };
}

let sink = 0;

function benchRow(row, opts) {
  const { version } = row;
  const mqBytes = mq.encode(row.mq, version);
  const mpBytes = mqtt.generate(row.mp, { protocolVersion: version });
  const sameBytes = mqBytes.equals(mpBytes);

  // parse: one packet per call.
  const mqDecode = (n) => {
    for (let i = 0; i < n; i++) sink += mq.decode(mqBytes, version).type.length;
  };
  const parser = mqtt.parser({ protocolVersion: version });
  parser.on('packet', (p) => {
    sink += p.cmd.length;
  });
  parser.on('error', (e) => {
    throw e;
  });
  const mpParse = (n) => {
    for (let i = 0; i < n; i++) parser.parse(mpBytes);
  };

  // stream: 100 packets back to back per call.
  const PER = 100;
  const batch = Buffer.concat(Array.from({ length: PER }, () => mqBytes));
  const framer = new mq.Framer(version);
  const onPacket = (p) => {
    sink += p.type.length;
  };
  const mqStream = (n) => {
    for (let i = 0; i < n; i++) framer.push(batch, onPacket);
  };
  const mpStream = (n) => {
    for (let i = 0; i < n; i++) parser.parse(batch);
  };

  // generate.
  const mqEncode = (n) => {
    for (let i = 0; i < n; i++) sink += mq.encode(row.mq, version).length;
  };
  const mpGenerate = (n) => {
    for (let i = 0; i < n; i++) sink += mqtt.generate(row.mp, { protocolVersion: version }).length;
  };

  const parseTarget = version === 5 ? 6 : 4;
  const chunked = row.chunked ? chunkedStream(mqBytes, version, parser, opts) : {};
  const parse = compare({ fn: mqDecode, batch: 100 }, { fn: mpParse, batch: 100 }, opts);
  const stream = compare(
    { fn: mqStream, batch: 1, perCall: PER },
    { fn: mpStream, batch: 1, perCall: PER },
    opts,
  );
  const generate = compare({ fn: mqEncode, batch: 100 }, { fn: mpGenerate, batch: 100 }, opts);
  return {
    row: row.name,
    version,
    bytes: mqBytes.length,
    sameBytes,
    parse: { ...parse, target: parseTarget },
    stream: { ...stream, target: parseTarget },
    generate: { ...generate, target: 2 },
    ...chunked,
  };
}

const CHUNK = 64 * 1024;
const gcd = (a, b) => (b === 0 ? a : gcd(b, a % b));

/**
 * The 64K rows: one long stream of `packet` (just enough copies that it ends on a 64 KiB boundary,
 * so the framer holds nothing between calls) pushed as 64 KiB chunks, and the same packets pushed in
 * chunks cut at packet ends. Both sides get the same chunks.
 */
function chunkedStream(packet, version, parser, opts) {
  const count = CHUNK / gcd(CHUNK, packet.length);
  const stream = Buffer.concat(Array.from({ length: count }, () => packet));
  const cut = [];
  for (let i = 0; i < stream.length; i += CHUNK) cut.push(stream.subarray(i, i + CHUNK));
  const perWhole = Math.floor(CHUNK / packet.length) * packet.length;
  const whole = [];
  for (let i = 0; i < stream.length; i += perWhole) whole.push(stream.subarray(i, i + perWhole));
  const framer = new mq.Framer(version);
  const onPacket = (p) => {
    sink += p.type.length;
  };
  const side = (chunks, push) => ({
    fn: (n) => {
      for (let i = 0; i < n; i++) for (const c of chunks) push(c);
    },
    batch: 1,
    perCall: count,
  });
  const mqPush = (c) => framer.push(c, onPacket);
  const mpPush = (c) => parser.parse(c);
  return {
    '64K cut': { ...compare(side(cut, mqPush), side(cut, mpPush), opts), target: 5 },
    '64K whole': { ...compare(side(whole, mqPush), side(whole, mpPush), opts), target: 5 },
  };
}

// --- Output ---

const fmtRate = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(0)}k`);
const OPS = ['parse', 'stream', 'generate', '64K cut', '64K whole'];
const measured = (r) => OPS.map((op) => r[op]).filter((m) => m !== undefined);
const verdict = (m) => (m.ratio >= m.target ? 'PASS' : 'FAIL');

function printTable(results) {
  const head = ['row', 'bytes', 'op', 'mq/s', 'mqtt-packet/s', 'ratio', 'target', ''];
  const lines = [];
  for (const r of results) {
    for (const op of OPS) {
      const m = r[op];
      if (m === undefined) continue;
      lines.push([
        op === 'parse' ? r.row : '',
        op === 'parse' ? String(r.bytes) : '',
        op,
        fmtRate(m.mq),
        fmtRate(m.mqttPacket),
        `${m.ratio.toFixed(2)}x`,
        `>= ${m.target}x`,
        verdict(m),
      ]);
    }
  }
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) =>
    cells.map((c, i) => (i >= 3 && i <= 6 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(fmt(l).trimEnd());
  const all = results.flatMap(measured);
  const failed = all.filter((m) => verdict(m) === 'FAIL').length;
  console.log('');
  console.log(
    `parse = decode() of one packet vs parser.parse(); stream = Framer.push of 100 packets vs parser.parse of the same buffer;`,
  );
  console.log(
    `generate = encode() vs mqttPacket.generate(). Rates: median of each side's rounds; ratio: median of per-round ratios (rounds alternate).`,
  );
  console.log(
    `64K cut / 64K whole: Framer.push vs parser.parse of a long stream in 64 KiB chunks / in chunks of whole packets.`,
  );
  for (const r of results)
    if (!r.sameBytes) console.log(`note: ${r.row}: mq and mqtt-packet encode different bytes`);
  console.log(failed === 0 ? `all ${all.length} targets met` : `${failed} of ${all.length} targets missed`);
}

const opts = parseArgs(process.argv.slice(2));
const selected = rows().filter((r) => opts.only === undefined || r.name.includes(opts.only));
if (selected.length === 0) {
  console.error(`no row matches --only ${opts.only}`);
  process.exit(1);
}
if (!opts.json) {
  console.log(
    `mq codec vs mqtt-packet ${require('mqtt-packet/package.json').version}, node ${process.version}, ` +
      `${opts.rounds} rounds x ${opts.roundMs} ms per contender (+${opts.warmupMs} ms warm-up)\n`,
  );
}
const started = Date.now();
const results = [];
for (const row of selected) {
  const r = benchRow(row, opts);
  results.push(r);
  if (opts.json) console.log(JSON.stringify(r));
}
if (opts.json) {
  const all = results.flatMap(measured);
  const missed = all.filter((m) => m.ratio < m.target).length;
  console.log(
    JSON.stringify({ summary: { targets: all.length, missed, seconds: (Date.now() - started) / 1000 } }),
  );
} else {
  printTable(results);
  console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
}
if (sink === 0) console.error('unexpected: nothing was decoded'); // keeps `sink` observable
