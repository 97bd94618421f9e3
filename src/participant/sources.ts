import type { TabularSchema } from '../task/data-schema.ts';
import { type DelimitedOptions, readDelimited } from './delimited.ts';
import { type ValidatedTable, validateTable } from './tabular.ts';

/**
 * Reads a CSV or TSV file (delimiter from the extension unless given) and checks it against a tabular schema.
 * @throws DATA_SCHEMA_MISMATCH naming file, line and column; DATA_DECODE_FAILED for malformed text; DATA_TOO_LARGE
 *   past `maxBytes` (default 1 GiB); INVALID_INPUT for an unreadable file or an unknown extension
 */
export async function loadTable(
  path: string,
  schema: TabularSchema,
  options: DelimitedOptions = {},
): Promise<ValidatedTable> {
  return validateTable(path, await readDelimited(path, options), schema);
}
