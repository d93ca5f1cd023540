/**
 * `mq encode`: packets described as JSON (what `mq decode --json` prints) into bytes: hex by
 * default, one line per packet; `--raw` for binary.
 */
import type { Command } from 'commander';
import { newCommand, run } from '../cli/command.js';
import { ExitCode, UsageError } from '../cli/errors.js';
import { parseMaxInput, readCommandInput, writeStdout } from '../cli/io.js';
import { encodeJson, parseProtocolVersion } from '../cli/packet-json.js';

interface EncodeOpts {
  file?: string;
  protocolVersion?: string;
  raw?: boolean;
  spaced?: boolean;
  base64?: boolean;
  maxInput?: string;
}

const EXAMPLES = `
Examples:
  mq encode '{"type":"PUBLISH","topic":"a/b","qos":1,"packetId":7,"payload":"hello"}'
  mq encode -V 3.1.1 '{"type":"SUBSCRIBE","packetId":1,"subscriptions":[{"topicFilter":"a/#","qos":1}]}'
  mq decode --json 300a0003612f62 | mq encode         back to the same bytes
  mq encode -f packets.ndjson --raw > packets.bin     one object a line in, binary out
  mq encode --spaced '{"type":"PINGREQ"}'             c0 00

Input: one JSON object, a list of objects, or NDJSON (one object a line), as the argument, with
-f FILE, or on stdin. Field names are those mq decode --json prints: type, version, dup, qos,
retain, topic, packetId, payload + payloadEncoding (utf8, hex, base64), properties {...},
reasonCode, subscriptions, topicFilters, reasonCodes, and for CONNECT protocolVersion, clean,
keepalive, clientId, will, username, password. A packet's "version" field wins over -V.

Output: hex, one line per packet (--spaced: "30 0d 00 ..."), --base64, or --raw binary bytes.
Input from -f or stdin is read up to --max-input (64 MiB by default).
Exit codes: 0 ok, 1 a field is missing or wrong (the message names it), the input is not JSON or is
over --max-input; 4 malformed input: JSON nested more than 256 levels deep (no packet is).`;

export function command(): Command {
  const cmd = newCommand('encode')
    .description('Encode packets described as JSON (as mq decode --json prints them) into MQTT bytes.')
    .argument('[json...]', 'the packet(s) as JSON (arguments are joined)')
    .option('-f, --file <file>', "read the JSON from FILE ('-' for stdin)")
    .option(
      '-V, --protocol-version <version>',
      'version for packets without a "version" field: 3.1, 3.1.1, 5',
      '5',
    )
    .option('--raw', 'write binary bytes instead of hex')
    .option('--spaced', 'hex with a space between bytes')
    .option('--base64', 'write base64, one line per packet')
    .option('--max-input <size>', 'largest input read from -f or stdin: bytes, or with K, M, G (default 64M)')
    .addHelpText('after', EXAMPLES);

  return run<EncodeOpts>(cmd, async (opts, args) => {
    const version = parseProtocolVersion(opts.protocolVersion ?? '5');
    if (version === undefined) {
      throw new UsageError(`-V: expected 3.1, 3.1.1 or 5, got '${opts.protocolVersion}'`);
    }
    if ([opts.raw, opts.spaced, opts.base64].filter(Boolean).length > 1) {
      throw new UsageError('choose one of --raw, --spaced and --base64');
    }
    const input = await readCommandInput(
      args,
      opts.file,
      {
        both: 'give the JSON as an argument or with -f, not both',
        none: 'no input: give the packet as JSON (mq encode \'{"type":"PINGREQ"}\'), with -f FILE, or on stdin',
      },
      parseMaxInput(opts.maxInput),
    );
    const text = typeof input === 'string' ? input : input.toString('utf8');

    const packets = encodeJson(text, version);
    if (opts.raw) {
      await writeStdout(Buffer.concat(packets));
    } else {
      const lines = packets.map((p) => {
        if (opts.base64) return p.toString('base64');
        const hex = p.toString('hex');
        return opts.spaced ? (hex.match(/../g) ?? []).join(' ') : hex;
      });
      await writeStdout(`${lines.join('\n')}\n`);
    }
    return ExitCode.Ok;
  });
}
