/**
 * The publishing engine of mq pub: many messages over one client, each counted until the broker
 * acknowledged it (QoS 1/2) or it was written (QoS 0). -m/-f/-s/-n repeat one message
 * (publishRepeats); -l and --ndjson stream stdin line by line with bounded memory (streamStdin).
 * Ctrl-C (the Stop) ends either; outcome() turns the tally into the exit code.
 */
import type { MqttClient, PublishResult } from '../client/index.js';
import { PublishRefusedError } from '../client/index.js';
import { type QoS, reasonCodeName } from '../protocol/index.js';
import { CliError, ExitCode, UsageError } from './errors.js';
import { type Limit, note, PAYLOAD_LIMIT } from './io.js';
import { type PublishOpts, parseNdjsonLine } from './ndjson-input.js';
import { asCliError, refusedOn } from './session.js';
import type { Stop } from './signals.js';

export interface Tally {
  sent: number;
  /** Acknowledged (QoS 1/2) or written (QoS 0), or failed: no longer waiting. */
  settled: number;
  acked: number;
  failures: number;
  firstFailure?: CliError;
}

interface Handlers {
  ok: (result: PublishResult) => void;
  err: (err: unknown) => void;
}

type MakeHandlers = (topic: string, qos: QoS, after: () => void) => Handlers;

/** What one publish run works with: the client, its tally, the callbacks of each publish, Ctrl-C. */
export interface PublishRun {
  client: MqttClient;
  tally: Tally;
  makeHandlers: MakeHandlers;
  stop: Stop;
  quiet: boolean;
}

/** A run on `client`: --json prints each acknowledgement on stdout, --quiet keeps failures 2..5 off stderr. */
export function publishRun(
  client: MqttClient,
  output: { json: boolean; quiet: boolean },
  stop: Stop,
): PublishRun {
  const tally: Tally = { sent: 0, settled: 0, acked: 0, failures: 0 };
  return { client, tally, makeHandlers: handlersFor(tally, output, stop), stop, quiet: output.quiet };
}

/**
 * The exit code once publishing ended (every message acknowledged: 0), or the CliError: 130 when
 * Ctrl-C left messages unacknowledged, the first failure, or the lost connection.
 */
export function outcome(run: PublishRun, lostError: unknown): number {
  const { tally, quiet } = run;
  const interrupted = run.stop.signal.aborted;
  const unsettled = tally.sent - tally.settled;
  if (interrupted && unsettled > 0) {
    throw new CliError(
      `interrupted: ${unsettled} of ${tally.sent} messages were not acknowledged`,
      ExitCode.Interrupted,
    );
  }
  if (tally.firstFailure !== undefined) {
    if (tally.failures > 1 && !quiet) {
      note(`${tally.failures} of ${tally.sent} messages failed`);
    }
    throw tally.firstFailure;
  }
  if (lostError !== undefined) throw asCliError(lostError);
  return ExitCode.Ok;
}

/** How a refused or unacknowledged publish reads: "broker refused message on 'a/b': 0x87 Not authorized". */
function refusalMessage(topic: string, err: unknown): string {
  if (err instanceof PublishRefusedError && /refused the message to/.test(err.message)) {
    return refusedOn(topic, err.reasonCode);
  }
  if (err instanceof PublishRefusedError) return err.message;
  return err instanceof Error ? err.message : String(err);
}

/** The callbacks of one publish: count it, print --json acks, keep the first failure. */
function handlersFor(tally: Tally, conn: { json: boolean; quiet: boolean }, stop: Stop): MakeHandlers {
  return (topic, q, after) => ({
    ok: (result: PublishResult) => {
      after();
      tally.settled++;
      if (q > 0) tally.acked++;
      if (conn.json) {
        const rc = result.reasonCode;
        process.stdout.write(
          `${JSON.stringify({ topic, qos: q, packetId: result.packetId, reasonCode: rc, reason: reasonCodeName(rc, 'PUBACK') })}\n`,
        );
      }
    },
    err: (err: unknown) => {
      after();
      if (stop.signal.aborted) return; // the client was closed on Ctrl-C: not the broker's failure
      tally.settled++;
      tally.failures++;
      const cli = asCliError(err);
      const failure =
        cli.exitCode === ExitCode.NotAcknowledged
          ? new CliError(refusalMessage(topic, err), cli.exitCode)
          : cli;
      tally.firstFailure ??= failure;
      if (!conn.quiet && tally.failures > 1 && tally.failures <= 5) note(failure.message);
    },
  });
}

/** -m, -f, -s, -n: the message to every topic, --repeat times; with a delay, each round acknowledged first. */
export async function publishRepeats(
  run: PublishRun,
  payload: Buffer,
  p: { topics: string[]; repeat: number; repeatDelayMs: number; publishOpts: PublishOpts },
): Promise<void> {
  const { client, tally, makeHandlers, stop } = run;
  const noop = () => {};
  const pending: Promise<void>[] = [];
  for (let i = 0; i < p.repeat && !stop.signal.aborted; i++) {
    if (i > 0 && p.repeatDelayMs > 0) await Promise.race([delay(p.repeatDelayMs), stop.stopped]);
    if (stop.signal.aborted) break;
    for (const topic of p.topics) {
      tally.sent++;
      const h = makeHandlers(topic, p.publishOpts.qos, noop);
      pending.push(client.publish(topic, payload, p.publishOpts).then(h.ok, h.err));
    }
    // With a delay, each repeat is acknowledged before the next one goes out.
    if (p.repeatDelayMs > 0) await Promise.race([Promise.all(pending.splice(0)), stop.stopped]);
  }
  await Promise.race([Promise.all(pending), stop.stopped]);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** At most this many publishes waiting in the client before stdin reading pauses (backpressure). */
const HIGH_WATER = 4096;

/** An --ndjson line: room for the largest payload in base64, and the rest of the object. */
const NDJSON_LINE_LIMIT: Limit = { bytes: 384 * 1024 * 1024, why: "mq's limit for an --ndjson line" };

/**
 * -l and --ndjson: reads stdin a chunk at a time, splits lines, publishes each; pauses reading while
 * HIGH_WATER publishes wait, so memory stays bounded whatever the input size. A line is at most
 * the largest MQTT payload (-l) or NDJSON_LINE_LIMIT: a longer one is a UsageError once its bytes
 * pass the limit (`mq pub -l < /dev/zero` ends).
 */
export async function streamStdin(
  run: PublishRun,
  ndjson: boolean,
  topics: string[],
  defaults: PublishOpts,
): Promise<void> {
  const { client, tally, makeHandlers, stop } = run;
  let outstanding = 0;
  let wake: (() => void) | undefined;
  const settled = () => {
    outstanding--;
    if (wake !== undefined && outstanding < HIGH_WATER / 2) {
      const w = wake;
      wake = undefined;
      w();
    }
  };
  // One pair of callbacks per (topic, QoS), not per message: this loop runs 100k+ times a second.
  const handlerCache = new Map<string, Handlers>();
  const handlers = (topic: string, qos: QoS): Handlers => {
    const key = `${qos}${topic}`;
    let h = handlerCache.get(key);
    if (h === undefined) {
      h = makeHandlers(topic, qos, settled);
      if (handlerCache.size < 10_000) handlerCache.set(key, h);
    }
    return h;
  };
  const lineHandlers = topics.map((t) => handlers(t, defaults.qos));
  const lineLimit = ndjson ? NDJSON_LINE_LIMIT : PAYLOAD_LIMIT;
  let lineNo = 0;
  // The start of a line that has no end yet, in pieces (joined once, when its end arrives).
  const carry: Buffer[] = [];
  let carried = 0;

  const publishLine = (line: Buffer): Promise<void> | undefined => {
    lineNo++;
    if (line.length === 0) return undefined; // as mosquitto_pub -l: empty lines are not sent
    if (ndjson) {
      return parseNdjsonLine(line, lineNo, topics, defaults, client.version).then((m) => {
        if (m === undefined) return;
        for (const topic of m.topics) {
          const h = handlers(topic, m.opts.qos);
          outstanding++;
          tally.sent++;
          client.publish(topic, m.payload, m.opts).then(h.ok, h.err);
        }
      });
    }
    for (let i = 0; i < topics.length; i++) {
      const h = lineHandlers[i]!;
      outstanding++;
      tally.sent++;
      client.publishWith(topics[i]!, line, defaults, h.ok, h.err);
    }
    return undefined;
  };

  try {
    await readLines();
  } catch (err) {
    if (!stop.signal.aborted) throw err; // stdin destroyed on Ctrl-C ends the loop with an error
  }
  // Every publish has been acknowledged (or failed) once outstanding reaches 0.
  while (outstanding > 0 && !stop.signal.aborted) {
    await Promise.race([
      new Promise<void>((resolve) => {
        wake = resolve;
        if (outstanding === 0) resolve();
      }),
      stop.stopped,
    ]);
  }

  /** The line ending at `end` of `chunk`, joined with the carried start of it. */
  function takeLine(chunk: Buffer, start: number, end: number): Buffer {
    const tail = chunk.subarray(start, end);
    if (carried + tail.length > lineLimit.bytes) tooLong();
    if (carry.length === 0) return tail;
    const line = Buffer.concat([...carry, tail], carried + tail.length);
    carry.length = 0;
    carried = 0;
    return line;
  }

  function tooLong(): never {
    throw new UsageError(
      `${ndjson ? '--ndjson' : '-l'}: line ${lineNo + 1} is longer than ${lineLimit.bytes} bytes (${lineLimit.why})`,
    );
  }

  async function readLines(): Promise<void> {
    for await (const data of process.stdin as AsyncIterable<Buffer>) {
      if (stop.signal.aborted || tally.firstFailure?.exitCode === ExitCode.Connection) break;
      let start = 0;
      for (;;) {
        const nl = data.indexOf(0x0a, start);
        if (nl < 0) break;
        const pending = publishLine(takeLine(data, start, nl));
        if (pending !== undefined) await pending;
        start = nl + 1;
        if (outstanding >= HIGH_WATER) {
          await Promise.race([
            new Promise<void>((resolve) => {
              wake = resolve;
            }),
            stop.stopped,
          ]);
          if (stop.signal.aborted) return;
        }
      }
      if (start < data.length) {
        carry.push(Buffer.from(data.subarray(start)));
        carried += data.length - start;
        if (carried > lineLimit.bytes) tooLong();
      }
    }
    if (carried > 0 && !stop.signal.aborted) await publishLine(takeLine(Buffer.alloc(0), 0, 0));
  }
}
