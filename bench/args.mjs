// The command-line loop the bench scripts share (bench/codec.mjs, broker.mjs, proxy.mjs):
//
//   parseFlags(process.argv.slice(2), {
//     usage: 'usage: node bench/x.mjs [--json] [--rounds N]',
//     switches: { '--json': () => (opts.json = true) },
//     values: { '--rounds': (v) => (opts.rounds = Number(v)) },
//   });
//
// A flag in `values` takes the next argument ("--rounds needs a value" when there is none), one in
// `switches` takes none; --help prints `usage` and exits 0; anything else throws "unknown argument".

export function parseFlags(argv, { usage, switches = {}, values = {} }) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help') {
      process.stdout.write(`${usage}\n`);
      process.exit(0);
    } else if (Object.hasOwn(switches, a)) switches[a]();
    else if (Object.hasOwn(values, a)) {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      values[a](v);
    } else throw new Error(`unknown argument ${a}`);
  }
}

/** The comma-separated `v` as a list, each item one of `allowed` (else "unknown WHAT 'x' (a, b)"). */
export function listOf(v, allowed, what) {
  const items = v.split(',').map((s) => s.trim());
  for (const s of items)
    if (!allowed.includes(s)) throw new Error(`unknown ${what} '${s}' (${allowed.join(', ')})`);
  return items;
}
