/**
 * The live counters of a run, in shared memory: each worker writes its own block (one writer per
 * slot), the main thread reads them for progress and to know when the messages still on their way
 * have arrived. Blocks are 192 bytes apart so two workers never write the same cache line.
 */
export const C_SENT = 0;
export const C_SENT_REC = 1;
export const C_ACKED_REC = 2;
/** Every PUBLISH received. */
export const C_RECEIVED = 3;
/** Recorded messages of a run with an mq header (duplicates included). */
export const C_RECEIVED_REC = 4;
/** Distinct messages of this run received (recorded or not): the drain target. */
export const C_UNIQUE = 5;
export const C_UNIQUE_REC = 6;
export const C_DUP_REC = 7;
export const C_REORDERED_REC = 8;
export const C_FOREIGN = 9;
/** QoS 1/2 messages not yet acknowledged. */
export const C_INFLIGHT = 10;
export const C_ERRORS = 11;
export const C_OPEN = 12;
export const C_ATTEMPTED = 13;
export const C_CONNECTED = 14;
export const C_FAILED = 15;
export const C_LOST = 16;
/** Sequence gaps of other runs' publishers (sub mode's loss). */
export const C_GAPS = 17;
export const COUNTER_SLOTS = 18;
/** Float64 slots per worker block (a multiple of 8: 64-byte lines). */
export const BLOCK = 24;

/** The shared memory of a run. */
export interface SharedCounters {
  /** BLOCK slots per worker. */
  counters: SharedArrayBuffer;
  /** Float64 per publisher: messages sent (all phases). */
  sentAll: SharedArrayBuffer;
  /** Float64 per publisher: messages sent in recorded phases. */
  sentRec: SharedArrayBuffer;
  /** Int32 per (subscriber, publisher): messages received (closed-loop QoS 0 window), or null. */
  received: SharedArrayBuffer | null;
}

export function allocateCounters(workers: number, pubs: number, windowCells: number): SharedCounters {
  return {
    counters: new SharedArrayBuffer(8 * BLOCK * Math.max(1, workers)),
    sentAll: new SharedArrayBuffer(8 * Math.max(1, pubs)),
    sentRec: new SharedArrayBuffer(8 * Math.max(1, pubs)),
    received: windowCells > 0 ? new SharedArrayBuffer(4 * windowCells) : null,
  };
}

/** Worker `w`'s block. */
export function counterBlock(shared: SharedCounters, w: number): Float64Array {
  return new Float64Array(shared.counters, 8 * BLOCK * w, BLOCK);
}

/** Slot `slot` summed over every worker. */
export function sumCounter(shared: SharedCounters, workers: number, slot: number): number {
  const all = new Float64Array(shared.counters);
  let n = 0;
  for (let w = 0; w < Math.max(1, workers); w++) n += all[w * BLOCK + slot]!;
  return n;
}
