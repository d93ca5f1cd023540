/**
 * Headless Chromium (Debian's `chromium`) for tests that must see a page rendered: `--dump-dom`
 * (the DOM after the page ran) and `--screenshot` (a PNG, decoded here to count pixels of a colour).
 * Only for test/interop (the package may be missing elsewhere). Flags from NOTES.md.
 *
 *   const dom = await chromiumDumpDom(file);                 // the serialised DOM
 *   const png = decodePng(await chromiumScreenshot(file, 1000, 1400));
 *   countPixels(png, [31, 111, 209], 60);                    // pixels near that colour
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';
import { spawnProcess } from './spawn.js';

export const CHROMIUM_BIN = '/usr/bin/chromium';

async function chromium(args: string[], timeoutMs: number): Promise<{ stdout: string; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mq-chromium-'));
  const r = await spawnProcess(CHROMIUM_BIN, [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${join(dir, 'profile')}`,
    ...args.map((a) => a.replace('{dir}', dir)),
  ]).exit(timeoutMs);
  if (r.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`chromium exited ${r.code}: ${r.stderr.slice(-2000)}`);
  }
  return { stdout: r.stdout, dir };
}

/** The DOM of `file` after it loaded (and ran its scripts), as Chromium serialises it. */
export async function chromiumDumpDom(file: string, timeoutMs = 30_000): Promise<string> {
  const { stdout, dir } = await chromium(['--dump-dom', pathToFileURL(file).href], timeoutMs);
  rmSync(dir, { recursive: true, force: true });
  return stdout;
}

/** A PNG screenshot of `file` in a window of width x height. */
export async function chromiumScreenshot(
  file: string,
  width: number,
  height: number,
  timeoutMs = 30_000,
): Promise<Buffer> {
  const { dir } = await chromium(
    [
      '--screenshot={dir}/shot.png',
      '--hide-scrollbars',
      `--window-size=${width},${height}`,
      pathToFileURL(file).href,
    ],
    timeoutMs,
  );
  try {
    return readFileSync(join(dir, 'shot.png'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Image {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel, rows top to bottom. */
  rgba: Buffer;
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes). */
export function decodePng(png: Buffer): Image {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString('latin1', offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, colorType, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (depth !== 8 || interlace !== 0 || (colorType !== 2 && colorType !== 6)) {
        throw new Error(
          `PNG not supported here: depth ${depth}, colour type ${colorType}, interlace ${interlace}`,
        );
      }
      channels = colorType === 6 ? 4 : 3;
    } else if (type === 'IDAT') {
      idat.push(data);
    }
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = Buffer.alloc(width * height * 4);
  let prev = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? line[i - channels]! : 0;
      const b = prev[i]!;
      const c = i >= channels ? prev[i - channels]! : 0;
      let add = 0;
      if (filter === 1) add = a;
      else if (filter === 2) add = b;
      else if (filter === 3) add = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        add = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      line[i] = (line[i]! + add) & 0xff;
    }
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < 3; k++) out[(y * width + x) * 4 + k] = line[x * channels + k]!;
      out[(y * width + x) * 4 + 3] = channels === 4 ? line[x * channels + 3]! : 255;
    }
    prev = line;
  }
  return { width, height, rgba: out };
}

/** Pixels within `tolerance` (per channel) of `rgb`. */
export function countPixels(img: Image, rgb: [number, number, number], tolerance: number): number {
  let n = 0;
  for (let i = 0; i < img.rgba.length; i += 4) {
    if (
      Math.abs(img.rgba[i]! - rgb[0]) <= tolerance &&
      Math.abs(img.rgba[i + 1]! - rgb[1]) <= tolerance &&
      Math.abs(img.rgba[i + 2]! - rgb[2]) <= tolerance
    ) {
      n++;
    }
  }
  return n;
}
