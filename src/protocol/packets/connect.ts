import { PROTOCOL_NAME } from '../constants.js';
import { EncodeError } from '../errors.js';
import { decodeProperties, propertyBlockSize, writeProperties } from '../properties.js';
import type { Reader } from '../reader.js';
import { validateTopicName } from '../topic.js';
import type { ConnectPacket, ProtocolVersion, QoS, Will } from '../types.js';
import {
  binarySize,
  checkQos,
  checkU16,
  stringSize,
  writeBinary,
  writeFixedHeader,
  writeString,
  writeU16,
} from '../writer.js';
import { reservedFlags } from './fields.js';

export function decodeConnect(r: Reader, flags: number): ConnectPacket {
  reservedFlags(r, flags, 0);
  const nameAt = r.pos;
  const protocolName = r.string('protocol name');
  const levelAt = r.pos;
  const levelByte = r.u8('protocol level');
  // Mosquitto's bridges set 0x80 on a 3.1 / 3.1.1 level (try_private).
  const bridge = levelByte === 0x83 || levelByte === 0x84;
  const level = bridge ? levelByte & 0x7f : levelByte;
  if (bridge && r.notes)
    r.notes[r.notes.length - 1]!.value = `0x${levelByte.toString(16)} (${level} + bridge flag 0x80)`;
  if (level !== 3 && level !== 4 && level !== 5) {
    r.fatal(
      `unsupported protocol level ${level} (3 = MQTT 3.1, 4 = 3.1.1, 5 = 5.0; 0x83, 0x84: a bridge)`,
      levelAt,
      'MQTT-3.1.2-2',
      0x84,
    );
  }
  const version: ProtocolVersion = level;
  r.version = version;
  if (protocolName !== PROTOCOL_NAME[version]) {
    r.protocol(
      `protocol name '${protocolName}' does not match level ${level} (expected '${PROTOCOL_NAME[version]}')`,
      nameAt,
      'MQTT-3.1.2-1',
      0x84,
    );
  }
  const flagsAt = r.pos;
  const cf = r.u8('connect flags');
  if (r.notes) r.notes[r.notes.length - 1]!.value = describeConnectFlags(cf);
  if ((cf & 0x01) !== 0) r.malformed('connect flags reserved bit 0 is set', flagsAt, 'MQTT-3.1.2-3');
  const hasWill = (cf & 0x04) !== 0;
  let willQos = (cf >> 3) & 0x03;
  const willRetain = (cf & 0x20) !== 0;
  const hasPassword = (cf & 0x40) !== 0;
  const hasUsername = (cf & 0x80) !== 0;
  if (willQos === 3) {
    r.malformed('will QoS is 3', flagsAt, r.rule('MQTT-3.1.2-12', 'MQTT-3.1.2-14'));
    willQos = 2;
  }
  if (!hasWill && willQos !== 0) {
    r.malformed('will QoS is set without the will flag', flagsAt, r.rule('MQTT-3.1.2-11', 'MQTT-3.1.2-13'));
  }
  if (!hasWill && willRetain) {
    r.malformed(
      'will retain is set without the will flag',
      flagsAt,
      r.rule('MQTT-3.1.2-13', 'MQTT-3.1.2-15'),
    );
  }
  if (version !== 5 && hasPassword && !hasUsername) {
    r.malformed('password flag is set without the user name flag', flagsAt, 'MQTT-3.1.2-22');
  }
  const keepalive = r.u16('keep alive');
  const properties = version === 5 ? decodeProperties(r, 'CONNECT') : undefined;
  r.section = 'payload';
  const clientId = r.string('client identifier');
  let will: Will | undefined;
  if (hasWill) {
    const willProperties = version === 5 ? decodeProperties(r, 'WILL') : undefined;
    const topicAt = r.pos;
    const topic = r.string('will topic');
    const problem = validateTopicName(topic, version);
    if (problem) r.malformed(`will ${problem.message}`, topicAt, problem.rule);
    const payload = r.binary('will payload');
    will = { topic, payload, qos: willQos as QoS, retain: willRetain, properties: willProperties };
  }
  const username = hasUsername ? r.string('user name') : undefined;
  const password = hasPassword ? r.binary('password') : undefined;
  r.expectEnd();
  return {
    type: 'CONNECT',
    protocolName,
    protocolVersion: version,
    ...(bridge ? { bridge: true } : {}),
    clean: (cf & 0x02) !== 0,
    keepalive,
    clientId,
    will,
    username,
    password,
    properties,
  };
}

function describeConnectFlags(cf: number): string {
  const parts = [
    `username=${(cf >> 7) & 1}`,
    `password=${(cf >> 6) & 1}`,
    `willRetain=${(cf >> 5) & 1}`,
    `willQoS=${(cf >> 3) & 3}`,
    `will=${(cf >> 2) & 1}`,
    `clean=${(cf >> 1) & 1}`,
    `reserved=${cf & 1}`,
  ];
  return `0x${cf.toString(16).padStart(2, '0')} (${parts.join(' ')})`;
}

/** CONNECT is encoded at its own protocolVersion (the `version` argument is ignored). */
export function connectRemainingLength(p: ConnectPacket): number {
  const v = p.protocolVersion;
  if (v !== 3 && v !== 4 && v !== 5)
    throw new EncodeError(`CONNECT protocolVersion must be 3, 4 or 5, not ${String(v)}`);
  checkU16(p.keepalive, 'CONNECT keepalive');
  if (p.bridge === true && v === 5)
    throw new EncodeError('CONNECT bridge flag (protocol level | 0x80) exists for MQTT 3.1 and 3.1.1 only');
  if (p.will) checkQos(p.will.qos, 'will QoS');
  const name = p.protocolName ?? PROTOCOL_NAME[v];
  let n = stringSize(name, 'protocol name') + 1 + 1 + 2;
  if (v === 5) n += propertyBlockSize(p.properties, 'CONNECT');
  n += stringSize(p.clientId, 'client identifier');
  if (p.will) {
    if (v === 5) n += propertyBlockSize(p.will.properties, 'WILL');
    n += stringSize(p.will.topic, 'will topic') + binarySize(p.will.payload, 'will payload');
  }
  if (p.username !== undefined) n += stringSize(p.username, 'user name');
  if (p.password !== undefined) n += binarySize(p.password, 'password');
  return n;
}

export function writeConnect(p: ConnectPacket, buf: Buffer, pos: number, rl: number): number {
  const v = p.protocolVersion;
  pos = writeFixedHeader(buf, pos, 0x10, rl);
  pos = writeString(buf, pos, p.protocolName ?? PROTOCOL_NAME[v]);
  buf[pos++] = p.bridge === true ? v | 0x80 : v;
  let cf = p.clean ? 0x02 : 0;
  if (p.will) {
    cf |= 0x04 | ((p.will.qos & 3) << 3) | (p.will.retain ? 0x20 : 0);
  }
  if (p.password !== undefined) cf |= 0x40;
  if (p.username !== undefined) cf |= 0x80;
  buf[pos++] = cf;
  pos = writeU16(buf, pos, p.keepalive);
  if (v === 5) pos = writeProperties(buf, pos, p.properties);
  pos = writeString(buf, pos, p.clientId);
  if (p.will) {
    if (v === 5) pos = writeProperties(buf, pos, p.will.properties);
    pos = writeString(buf, pos, p.will.topic);
    pos = writeBinary(buf, pos, p.will.payload);
  }
  if (p.username !== undefined) pos = writeString(buf, pos, p.username);
  if (p.password !== undefined) pos = writeBinary(buf, pos, p.password);
  return pos;
}
