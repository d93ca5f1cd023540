/** Colours that leave text as it is (a colourless chalk, as off a TTY), for printers under test. */
const NO_COLOR = Object.assign((s: string) => s, { level: 0 });

export const PLAIN_PAINT = {
  bold: NO_COLOR,
  dim: NO_COLOR,
  cyan: NO_COLOR,
  green: NO_COLOR,
  yellow: NO_COLOR,
  red: NO_COLOR,
  magenta: NO_COLOR,
  level: 0,
};
