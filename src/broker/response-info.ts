/**
 * Response Information (MQTT 5.0 3.2.2.3.15, 4.10): what the CONNACK tells a client that asked for
 * it (Request Response Information 1 in its CONNECT; 0 forbids it [MQTT-3.1.2-28]) to build its
 * response topics on. mq broker answers with a prefix made from a template, `resp/%c/` by
 * default, where %c is the client id with '%', '/', '+', '#' and '$' percent-encoded (%25 %2F %2B
 * %23 %24): one topic level per client, never a wildcard, never a '$' topic, and no two client ids
 * share a prefix.
 */
import { validateTopicName } from '../protocol/index.js';

export const DEFAULT_RESPONSE_INFORMATION = 'resp/%c/';

/** A UTF-8 string property holds at most 65,535 bytes. */
const MAX_STRING_BYTES = 65_535;

/** `clientId` as one topic level: the characters that would split it, match or reserve it, escaped. */
function escapeLevel(clientId: string): string {
  return clientId.replace(/[%/+#$]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The Response Information for `clientId`; undefined when it would not fit in a string property. */
export function responseInformation(template: string, clientId: string): string | undefined {
  const info = template.replaceAll('%c', escapeLevel(clientId));
  return Buffer.byteLength(info) <= MAX_STRING_BYTES ? info : undefined;
}

/**
 * Why `template` cannot be a Response Information template (every client's prefix, followed by a
 * response topic's last level, must be a topic name a client may publish to), or undefined.
 */
export function responseTemplateProblem(template: string): string | undefined {
  if (template === '') return 'the prefix is empty';
  const sample = `${responseInformation(template, 'client') ?? ''}x`;
  if (sample.startsWith('$'))
    return `'${template}' starts with '$' (topics beginning with $ are the broker's)`;
  const problem = validateTopicName(sample, 5);
  return problem === undefined ? undefined : `'${template}': ${problem.message}`;
}
