/**
 * Connection profiles: named sets of connection settings in the config file
 * ({"profiles": {"NAME": {"url": ..., "username": ...}}}), chosen with --profile or MQ_PROFILE.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from './errors.js';
import { CONFIG_LIMIT, readFileBounded } from './io.js';

export interface Profile {
  url?: string;
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  cafile?: string;
  cert?: string;
  key?: string;
  insecure?: boolean;
  version?: string;
  id?: string;
  keepalive?: number;
}

/** The config file: $MQ_CONFIG, else $XDG_CONFIG_HOME/mq/config.json, else ~/.config/mq/config.json. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MQ_CONFIG) return env.MQ_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME ?? '', '.config');
  return join(base, 'mq', 'config.json');
}

/** Every field a profile may have, and its JSON type (a Map: names come from the user's file). */
const PROFILE_FIELDS = new Map<string, 'string' | 'number' | 'boolean'>([
  ['url', 'string'],
  ['host', 'string'],
  ['port', 'number'],
  ['username', 'string'],
  ['password', 'string'],
  ['cafile', 'string'],
  ['cert', 'string'],
  ['key', 'string'],
  ['insecure', 'boolean'],
  ['version', 'string'],
  ['id', 'string'],
  ['keepalive', 'number'],
]);

/** Reads profile `name` from the config file; UsageError when the file or the profile is missing or wrong. */
export async function loadProfile(name: string, env: NodeJS.ProcessEnv = process.env): Promise<Profile> {
  const file = configPath(env);
  if (!existsSync(file)) {
    throw new UsageError(
      `--profile ${name}: no config file at ${file} (create it: {"profiles": {"${name}": {"url": "mqtts://host", "username": "..."}}})`,
    );
  }
  const text = readFileBounded(file, CONFIG_LIMIT, `--profile ${name}`).toString('utf8');
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--profile ${name}: ${file} is not valid JSON: ${(err as Error).message}`);
  }
  const profiles =
    typeof data === 'object' && data !== null ? (data as { profiles?: unknown }).profiles : undefined;
  if (typeof profiles !== 'object' || profiles === null) {
    throw new UsageError(`--profile ${name}: ${file} has no "profiles" object`);
  }
  // Own properties only: `--profile __proto__` (or toString) names no profile.
  const entry = Object.hasOwn(profiles, name) ? (profiles as Record<string, unknown>)[name] : undefined;
  if (typeof entry !== 'object' || entry === null) {
    const known = Object.keys(profiles);
    throw new UsageError(
      `--profile ${name}: no such profile in ${file} (${known.length ? `profiles: ${known.join(', ')}` : 'it has none'})`,
    );
  }
  const profile: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(entry)) {
    const type = PROFILE_FIELDS.get(key);
    if (type === undefined) {
      throw new UsageError(
        `--profile ${name}: unknown field "${key}" in ${file} (fields: ${[...PROFILE_FIELDS.keys()].join(', ')})`,
      );
    }
    if (typeof value !== type)
      throw new UsageError(`--profile ${name}: "${key}" in ${file} must be a ${type}`);
    profile[key] = value;
  }
  return profile as Profile;
}
