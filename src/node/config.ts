import { z } from 'zod';
import { AilinkError } from '../shared/errors.ts';
import { readJsonFile } from './network.ts';

/**
 * The config files of the long-running roles (`--config FILE`): one JSON object per role whose keys are the role's
 * own flags, spelt as on the command line (`"http-port": 8700`, `"listen": ["/ip4/10.0.0.5/tcp/4001"]`). A flag given
 * on the command line overrides the file. Each file is validated whole before anything starts: an unknown key, or a
 * value of the wrong kind, is refused naming the field.
 */

const text = z.string().min(1).max(4096);
const port = z.number().int().min(0).max(65_535);
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const multiaddrs = z.array(text).min(1).max(16);
const endpoint = z.string().regex(/^wss?:\/\/\S+$/, 'expected a ws:// or wss:// endpoint');

/** Where the network is (as the flags of every command that reaches it). */
const networkFields = {
  chain: endpoint,
  network: text,
  protocol: text,
  'state-dir': text,
  key: text,
};

export const ROLE_CONFIG_SCHEMAS = {
  coordinator: z
    .object({
      ...networkFields,
      'data-dir': text,
      listen: text,
      announce: text,
      'http-port': port,
      'p2p-port': port,
      'test-data': text,
      'create-task': text,
    })
    .partial()
    .strict(),
  participant: z
    .object({ ...networkFields, coordinator: z.string().url(), task: text, data: text })
    .partial()
    .strict(),
  miner: z
    .object({
      'data-dir': text,
      listen: multiaddrs,
      announce: multiaddrs,
      allow: z.array(text).max(1024),
      capacity: count,
      'max-fragment': count,
      chain: endpoint,
      collateral: count,
      protocol: text,
      'idle-space': count,
      'collect-grace': count,
    })
    .partial()
    .strict(),
  verifier: z
    .object({
      'data-dir': text,
      listen: multiaddrs,
      announce: multiaddrs,
      chain: endpoint,
      protocol: text,
      'max-fragment': count,
    })
    .partial()
    .strict(),
} as const;

export type Role = keyof typeof ROLE_CONFIG_SCHEMAS;

/** Flag values as parseArgs gives them. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/**
 * The role's config file merged under its command-line flags: numbers become the strings the flag parsers take, so
 * both sources go through the same checks afterwards.
 * @throws INVALID_INPUT naming the file and the field when the file cannot be read or does not validate
 */
export function withConfigFile<V extends FlagValues>(role: Role, path: string | undefined, flags: V): V {
  if (path === undefined) return flags;
  const json = readJsonFile('--config', path, `an object whose keys are the ${role}'s flags`);
  const parsed = ROLE_CONFIG_SCHEMAS[role].safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) =>
      i.code === 'unrecognized_keys'
        ? `${i.keys.join(', ')}: not a flag of \`ailink ${role}\``
        : `${i.path.join('.') || '(root)'}: ${i.message}`,
    );
    throw new AilinkError('INVALID_INPUT', `${path}: ${problems.join('; ')}`);
  }
  const fromFile: FlagValues = {};
  for (const [key, value] of Object.entries(parsed.data as Record<string, unknown>)) {
    fromFile[key] = Array.isArray(value) ? value.map(String) : String(value);
  }
  const given = Object.fromEntries(Object.entries(flags).filter(([, v]) => v !== undefined));
  return { ...fromFile, ...given } as V;
}
