import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { AilinkError } from '../shared/errors.ts';

/**
 * CSV and TSV files as organisations export them: a header row, then one record per line, RFC 4180 quoting (a field in
 * double quotes may hold the delimiter, line breaks and doubled quotes), LF or CRLF line ends, an optional UTF-8 BOM.
 * TSV follows the same quoting rules (spreadsheets write it so). The text is read as a stream and parsed as it comes,
 * under a byte bound, so a file larger than the bound is refused before it exhausts memory.
 *
 * Choices where files in the wild disagree:
 * - A line with no character at all is skipped (a trailing newline, blank lines between records). A one-column row
 *   whose value is empty must therefore be written `""`.
 * - A lone CR ends a line as LF and CRLF do (old spreadsheets); inside quotes it is kept as data.
 * - A quote inside an unquoted field is kept as a character (`5'10"`); after a closing quote only the delimiter or a
 *   line end may follow.
 * - Every record must have as many fields as the header.
 * - The bytes must be UTF-8: a file in another encoding would silently turn its values into other strings.
 */

/** A parsed file: the header, the records, and where each record starts in the file. */
export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** The 1-based line at which each row starts, as an editor counts them (the header is line 1). */
  readonly lines: readonly number[];
}

export interface DelimitedOptions {
  /** One character, not a quote or a line break; default from the extension: .csv ',', .tsv and .tab tab. */
  readonly delimiter?: string;
  /** Files larger than this are refused (DATA_TOO_LARGE); default 1 GiB. */
  readonly maxBytes?: number;
  readonly signal?: AbortSignal;
}

export const DEFAULT_MAX_TABLE_BYTES = 2 ** 30;

/** The delimiter a file's extension implies. @throws INVALID_INPUT for an extension other than .csv, .tsv, .tab */
export function delimiterFor(path: string): string {
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return ',';
  if (ext === '.tsv' || ext === '.tab') return '\t';
  throw new AilinkError(
    'INVALID_INPUT',
    `${path}: expected a .csv or .tsv file (or an explicit delimiter), got "${ext || 'no extension'}"`,
  );
}

const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

const State = { fieldStart: 0, unquoted: 1, quoted: 2, quoteSeen: 3 } as const;
type State = (typeof State)[keyof typeof State];

/** Feeds text in pieces (the pieces may split anywhere, even CRLF) and returns the table at the end. */
export interface DelimitedParser {
  push(text: string): void;
  /** @throws DATA_DECODE_FAILED for an unterminated quote or no header */
  end(): Table;
}

/**
 * A streaming parser. `file` only names the file in messages.
 * @throws INVALID_INPUT for a delimiter that is not one character or is a quote or line break
 */
export function createDelimitedParser(options: { delimiter: string; file?: string }): DelimitedParser {
  const { delimiter } = options;
  const file = options.file ?? 'input';
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
    throw new AilinkError(
      'INVALID_INPUT',
      `expected a one-character delimiter other than a quote or line break, got ${JSON.stringify(delimiter)}`,
    );
  }
  const delim = delimiter.charCodeAt(0);
  const fail = (line: number, why: string): never => {
    throw new AilinkError('DATA_DECODE_FAILED', `${file} line ${line}: ${why}`, {
      details: { file, line },
    });
  };

  let header: string[] | undefined;
  const rows: string[][] = [];
  const lines: number[] = [];
  let record: string[] = [];
  let field = '';
  let state: State = State.fieldStart;
  let line = 1;
  let recordLine = 1;
  let quoteLine = 1;
  let lastWasCR = false;
  let first = true;

  const endRecord = () => {
    if (header === undefined) {
      header = record;
    } else {
      if (record.length !== header.length) {
        fail(
          recordLine,
          `expected ${header.length} fields as in the header, got ${record.length} (a value holding the delimiter or a line break must be quoted)`,
        );
      }
      rows.push(record);
      lines.push(recordLine);
    }
    record = [];
  };

  const push = (text: string) => {
    let i = 0;
    if (first && text.length > 0) {
      first = false;
      if (text.charCodeAt(0) === 0xfeff) i = 1;
    }
    const n = text.length;
    // Start of the current run of plain characters, copied with one slice rather than character by character.
    let from = i;
    while (i < n) {
      const c = text.charCodeAt(i);
      const crlf = lastWasCR && c === LF;
      lastWasCR = c === CR;
      switch (state) {
        case State.fieldStart:
          if (crlf) {
            // The LF of a CRLF that already ended the record.
          } else if (c === QUOTE) {
            state = State.quoted;
            quoteLine = line;
            if (record.length === 0) recordLine = line;
            from = i + 1;
          } else if (c === delim) {
            if (record.length === 0) recordLine = line;
            record.push('');
          } else if (c === LF || c === CR) {
            // A line with no character is skipped; a line ending right after a delimiter ends with an empty field.
            if (record.length > 0) {
              record.push('');
              endRecord();
            }
            line++;
          } else {
            if (record.length === 0) recordLine = line;
            state = State.unquoted;
            from = i;
            // Most characters are in unquoted fields: skip to the field's end in a tight loop. The skipped characters
            // hold no CR, and the next turn of the outer loop sees the end (or this piece runs out).
            let j = i + 1;
            while (j < n) {
              const d = text.charCodeAt(j);
              if (d === delim || d === LF || d === CR) break;
              j++;
            }
            i = j - 1;
            lastWasCR = false;
          }
          break;
        case State.unquoted:
          if (c === delim || c === LF || c === CR) {
            record.push(field + text.slice(from, i));
            field = '';
            state = State.fieldStart;
            if (c !== delim) {
              endRecord();
              line++;
            }
          }
          break;
        case State.quoted:
          if (c === QUOTE) {
            field += text.slice(from, i);
            state = State.quoteSeen;
          } else if ((c === LF && !crlf) || c === CR) {
            line++;
          }
          break;
        case State.quoteSeen:
          if (c === QUOTE) {
            // A doubled quote: one quote of data; the run of data restarts at this quote.
            state = State.quoted;
            from = i;
          } else if (c === delim || c === LF || c === CR) {
            record.push(field);
            field = '';
            state = State.fieldStart;
            if (c !== delim) {
              endRecord();
              line++;
            }
          } else {
            fail(
              line,
              `expected the delimiter or a line end after a closing quote, got ${JSON.stringify(text[i])}`,
            );
          }
          break;
      }
      i++;
    }
    // Keep the unfinished run for the next piece.
    if (state === State.unquoted || state === State.quoted) {
      field += text.slice(from, n);
    }
  };

  return {
    push,
    end() {
      if (state === State.quoted) fail(quoteLine, 'a quoted field opened here is never closed');
      if (state === State.unquoted || state === State.quoteSeen || record.length > 0) {
        // The last record without a final line break (or ending with a delimiter: one more empty field).
        record.push(field);
        field = '';
        endRecord();
      }
      state = State.fieldStart;
      if (header === undefined) fail(1, 'expected a header row, the file is empty');
      return { header: header!, rows, lines };
    },
  };
}

/**
 * Parses a whole text at once.
 * @throws DATA_DECODE_FAILED naming the line of a syntax error; INVALID_INPUT for a bad delimiter
 */
export function parseDelimited(text: string, options: { delimiter: string; file?: string }): Table {
  const parser = createDelimitedParser(options);
  parser.push(text);
  return parser.end();
}

/**
 * Reads a CSV or TSV file as a stream, refusing it once it passes `maxBytes`.
 * @throws DATA_TOO_LARGE past the bound; DATA_DECODE_FAILED for bytes that are not UTF-8 or a syntax error;
 *   INVALID_INPUT for an unreadable file or an unknown extension without a delimiter; ABORTED when signalled
 */
export async function readDelimited(path: string, options: DelimitedOptions = {}): Promise<Table> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_TABLE_BYTES;
  const delimiter = options.delimiter ?? delimiterFor(path);
  const tooLarge = (size: string) =>
    new AilinkError(
      'DATA_TOO_LARGE',
      `${path}: ${size}, more than the ${maxBytes}-byte bound for a table (raise maxBytes or split the file)`,
      { details: { file: path, maxBytes } },
    );
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (cause) {
    throw new AilinkError('INVALID_INPUT', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
  if (!info.isFile())
    throw new AilinkError(
      'INVALID_INPUT',
      `cannot read ${path}: expected a regular file, got ${info.isDirectory() ? 'a directory' : 'another kind of file'}; name a CSV/TSV file`,
    );
  const size = info.size;
  // Fail fast on the size the file system reports; the count below still holds if the file grows while read.
  if (size > maxBytes) throw tooLarge(`${size} bytes`);

  const parser = createDelimitedParser({ delimiter, file: path });
  // ignoreBOM keeps a BOM in the text so that the parser is the one place that drops it.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const decode = (chunk?: Uint8Array) => {
    try {
      return chunk === undefined ? decoder.decode() : decoder.decode(chunk, { stream: true });
    } catch (cause) {
      throw new AilinkError(
        'DATA_DECODE_FAILED',
        `${path}: expected UTF-8 text (save the file as UTF-8 CSV)`,
        {
          cause,
          details: { file: path },
        },
      );
    }
  };
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  let read = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (options.signal?.aborted) throw new AilinkError('ABORTED', `reading ${path} was cancelled`);
      read += chunk.byteLength;
      if (read > maxBytes) throw tooLarge(`more than ${maxBytes} bytes`);
      parser.push(decode(chunk));
    }
  } catch (cause) {
    if (cause instanceof AilinkError) throw cause;
    throw new AilinkError('INVALID_INPUT', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  } finally {
    stream.destroy();
  }
  parser.push(decode());
  return parser.end();
}
