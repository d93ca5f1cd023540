// A raw-socket MQTT 3.1.1 client for the load generator: pre-encoded bytes out, a minimal framer
// in, callbacks per packet, acks batched into one write per read.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect, DISCONNECT, Framer, subscribe, writeAck } from './mqtt-bytes.mjs';

// Every socket reads into this one buffer: onread callbacks run synchronously, one at a time, and
// the framer copies any partial packet it has to keep.
const READ_BUFFER = Buffer.allocUnsafe(1 << 20);

/** performance.now() taken once per read, for latency of every packet in that read. */
export let readNow = 0;

export class RawClient {
  constructor(port, clientId, { clean = true, keepalive = 60 } = {}) {
    this.port = port;
    this.clientId = clientId;
    this.clean = clean;
    this.keepalive = keepalive;
    this.socket = null;
    this.blocked = false;
    this.closed = false;
    this.error = null;
    /** (firstByte, data, bodyStart, bodyEnd) for each PUBLISH. */
    this.onPublish = null;
    /** (firstByte, packetId) for PUBACK/PUBREC/PUBREL/PUBCOMP. */
    this.onAck = null;
    /** Called after each read has been framed (acks queued during it are flushed first). */
    this.afterRead = null;
    this.onDrain = null;
    this.onClose = null;
    this.acks = [];
    this.scheduled = false;
    this.waiter = null;
    this.framer = new Framer((b0, data, s, e) => this.packet(b0, data, s, e));
  }

  /** Opens the TCP connection, sends CONNECT, resolves on CONNACK 0. */
  connect(timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`${this.clientId}: no CONNACK within ${timeoutMs} ms`));
        this.destroy();
      }, timeoutMs);
      this.waiter = {
        type: 2,
        resolve: (rc) => {
          clearTimeout(timer);
          if (rc === 0) resolve();
          else reject(new Error(`${this.clientId}: CONNACK return code ${rc}`));
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const socket = net.connect({
        port: this.port,
        host: '127.0.0.1',
        onread: {
          buffer: READ_BUFFER,
          callback: (n, buf) => {
            readNow = performance.now();
            this.framer.push(buf, 0, n);
            this.schedule();
            return true;
          },
        },
      });
      this.socket = socket;
      socket.setNoDelay(true);
      socket.on('connect', () => {
        socket.write(connect(this.clientId, { clean: this.clean, keepalive: this.keepalive }));
      });
      socket.on('drain', () => {
        this.blocked = false;
        this.onDrain?.();
      });
      socket.on('error', (err) => {
        this.error = err;
      });
      socket.on('close', () => {
        this.closed = true;
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = null;
          w.reject(this.error ?? new Error(`${this.clientId}: connection closed`));
        }
        this.onClose?.();
      });
    });
  }

  subscribe(filter, qos, timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.clientId}: no SUBACK for ${filter}`)),
        timeoutMs,
      );
      this.waiter = {
        type: 9,
        resolve: (rc) => {
          clearTimeout(timer);
          if (rc >= 0x80) reject(new Error(`${this.clientId}: SUBACK failure 0x${rc.toString(16)}`));
          else resolve(rc);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.socket.write(subscribe(1, filter, qos));
    });
  }

  packet(b0, data, s, e) {
    switch (b0 >> 4) {
      case 3:
        this.onPublish?.(b0, data, s, e);
        return;
      case 4:
      case 5:
      case 6:
      case 7:
        this.onAck?.(b0 & 0xf0, (data[s] << 8) | data[s + 1]);
        return;
      case 2:
      case 9: {
        const w = this.waiter;
        if (w && w.type === b0 >> 4) {
          this.waiter = null;
          // CONNACK: return code is the 2nd body byte; SUBACK: the first granted QoS after the id.
          w.resolve(data[s + (b0 >> 4 === 2 ? 1 : 2)] ?? 0x80);
        }
        return;
      }
      default:
        return;
    }
  }

  /**
   * Acks and the afterRead hook run once per event-loop turn (setImmediate), not once per read:
   * all reads of one poll phase are answered in one write per socket.
   */
  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.runScheduled);
  }

  runScheduled = () => {
    this.scheduled = false;
    this.flushAcks();
    this.afterRead?.();
  };

  /** Queues a 4-byte ack (first byte as in mqtt-bytes: PUBACK, PUBREC, PUBREL, PUBCOMP). */
  ack(firstByte, packetId) {
    this.acks.push(firstByte, packetId);
  }

  flushAcks() {
    const n = this.acks.length / 2;
    if (n === 0) return;
    const buf = Buffer.allocUnsafe(n * 4);
    let off = 0;
    for (let i = 0; i < this.acks.length; i += 2) off = writeAck(buf, off, this.acks[i], this.acks[i + 1]);
    this.acks.length = 0;
    this.write(buf);
  }

  write(buf) {
    if (this.closed) return false;
    const ok = this.socket.write(buf);
    if (!ok) this.blocked = true;
    return ok;
  }

  /** DISCONNECT and close; resolves when the socket is closed (bounded). */
  end(timeoutMs = 2000) {
    if (this.closed || !this.socket) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      this.socket.end(DISCONNECT);
    });
  }

  destroy() {
    this.socket?.destroy();
  }
}
