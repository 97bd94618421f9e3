import {
  chmodSync,
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  type Stats,
  writeFileSync,
} from 'node:fs';
import { AilinkError } from './errors.ts';

/**
 * Files and directories only their owner may read: data dirs (indexes, fragments, logs, key files) are created 0700
 * and secrets 0600, whatever the umask. A secret that group or others can read is refused on load, as ssh refuses a
 * private key: it may already have leaked, and a key that works anyway teaches nobody to fix the file.
 */

/** Creates `path` (and missing parents) with mode 0700. An existing directory is left as it is. */
export function makePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o700 });
}

/** @throws KEY_FILE_PERMISSIONS when `info` says group or others may read, write or run the file. */
export function checkPrivateMode(path: string, info: Pick<Stats, 'mode'>): void {
  if ((info.mode & 0o077) === 0) return;
  const mode = (info.mode & 0o777).toString(8).padStart(3, '0');
  throw new AilinkError(
    'KEY_FILE_PERMISSIONS',
    `${path}: a key file must be readable by its owner only: expected permissions 0600, got 0${mode}; run chmod 600 ${path}`,
    { details: { file: path, mode: `0${mode}`, expected: '0600' } },
  );
}

/**
 * Reads a secret file after checking, on the opened file itself (no window between check and read), that only its
 * owner can access it.
 * @throws KEY_FILE_PERMISSIONS when group or others can; the fs error (e.g. ENOENT) when it cannot be opened.
 */
export function readPrivateFileSync(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    checkPrivateMode(path, fstatSync(fd));
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a new secret file with mode 0600 (exactly: the umask may not widen or narrow it). @throws the fs error, EEXIST included. */
export function writePrivateFileSync(path: string, data: string | Uint8Array): void {
  writeFileSync(path, data, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}
