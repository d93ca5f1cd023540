/**
 * Sizes computed by a packet's size function and read back by its write function right after, so
 * property blocks are measured once per encode. Encoding is synchronous, so one shared slot is safe.
 */
export const sizes = { props: 0, will: 0 };
