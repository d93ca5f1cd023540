// Hand-built MQTT 3.1.1 packet bytes and a minimal framer for the broker load generator.
// Deliberately independent of any MQTT library (and of mq's own codec) so that the generator
// measures every broker the same way and stays cheap on the hot path.

/** Remaining-length varint. */
function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function str(s) {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function packet(firstByte, body) {
  return Buffer.concat([Buffer.from([firstByte]), varint(body.length), body]);
}

/** CONNECT, MQTT 3.1.1 (level 4). */
export function connect(clientId, { clean = true, keepalive = 60 } = {}) {
  const ka = Buffer.alloc(2);
  ka.writeUInt16BE(keepalive);
  return packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, clean ? 0x02 : 0x00]), ka, str(clientId)]));
}

export function subscribe(packetId, filter, qos) {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(packetId);
  return packet(0x82, Buffer.concat([id, str(filter), Buffer.from([qos])]));
}

export const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** A 4-byte ack (PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70) written into `buf` at `off`. */
export function writeAck(buf, off, firstByte, packetId) {
  buf[off] = firstByte;
  buf[off + 1] = 2;
  buf[off + 2] = packetId >> 8;
  buf[off + 3] = packetId & 0xff;
  return off + 4;
}

export const PUBACK = 0x40;
export const PUBREC = 0x50;
export const PUBREL = 0x62;
export const PUBCOMP = 0x70;

/**
 * Payload header used by every scenario (little-endian):
 *   0..1 magic 0x716d ('mq'), 2..3 stream (publisher index), 4..7 sequence, 8..15 send time
 *   (performance.now(), ms, float64). The rest is padding up to the payload size.
 */
export const MAGIC = 0x716d;
export const HEADER_BYTES = 16;

/**
 * A PUBLISH template: bytes of one packet with the payload header at `payloadOffset`, and
 * `pidOffset` for QoS>0 (the packet id is patched per message).
 */
export function publishTemplate(topic, qos, payloadSize, stream) {
  const payload = Buffer.alloc(Math.max(payloadSize, HEADER_BYTES), 0x2e);
  payload.writeUInt16LE(MAGIC, 0);
  payload.writeUInt16LE(stream, 2);
  const t = str(topic);
  const id = qos > 0 ? Buffer.alloc(2) : Buffer.alloc(0);
  const body = Buffer.concat([t, id, payload]);
  const bytes = packet(0x30 | (qos << 1), body);
  const headerLen = bytes.length - body.length;
  return {
    bytes,
    length: bytes.length,
    pidOffset: qos > 0 ? headerLen + t.length : -1,
    payloadOffset: headerLen + t.length + id.length,
  };
}

/**
 * Splits a TCP byte stream into packets. `onPacket(firstByte, data, bodyStart, bodyEnd)` is
 * called synchronously; `data` may be a reused read buffer, so copy what you keep.
 */
export class Framer {
  constructor(onPacket) {
    this.onPacket = onPacket;
    this.carry = null;
  }

  push(buf, start, end) {
    let data = buf;
    let off = start;
    let len = end;
    if (this.carry !== null) {
      data = Buffer.concat([this.carry, buf.subarray(start, end)]);
      off = 0;
      len = data.length;
      this.carry = null;
    }
    while (len - off >= 2) {
      const b0 = data[off];
      let rl = 0;
      let mul = 1;
      let i = off + 1;
      let byte;
      let complete = true;
      do {
        if (i >= len) {
          complete = false;
          break;
        }
        byte = data[i++];
        rl += (byte & 127) * mul;
        mul *= 128;
      } while (byte & 128);
      if (!complete || i + rl > len) break;
      this.onPacket(b0, data, i, i + rl);
      off = i + rl;
    }
    if (off < len) this.carry = Buffer.from(data.subarray(off, len));
  }
}
