import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { peerKeyIn, secretIn } from '../../src/node/keys.ts';
import { createKeyFile, loadKeyFile } from '../../src/shared/account.ts';
import { systemRandom } from '../../src/shared/clock.ts';
import { makePrivateDir, readPrivateFileSync } from '../../src/shared/private-files.ts';

const work = mkdtempSync(join(tmpdir(), 'ailink-private-files-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('key files and data dirs are private', () => {
  it('refuses an account key file readable by group (0640) with KEY_FILE_PERMISSIONS and the chmod fix', async () => {
    const file = join(work, 'group.json');
    const account = await createKeyFile(file, systemRandom);
    expect(modeOf(file)).toBe(0o600);
    chmodSync(file, 0o640);
    await expect(loadKeyFile(file)).rejects.toMatchObject({
      code: 'KEY_FILE_PERMISSIONS',
      message: `${file}: a key file must be readable by its owner only: expected permissions 0600, got 0640; run chmod 600 ${file}`,
      details: { file, mode: '0640', expected: '0600' },
    });
    chmodSync(file, 0o600);
    expect((await loadKeyFile(file)).address).toBe(account.address);
  });

  it("refuses a role's secret (server key, identity key) and libp2p key that others can read", async () => {
    const dir = join(work, 'role');
    const secret = secretIn(join(dir, 'server.key'), systemRandom);
    const peer = await peerKeyIn(join(dir, 'peer.key'));
    expect(modeOf(join(dir, 'server.key'))).toBe(0o600);
    expect(modeOf(join(dir, 'peer.key'))).toBe(0o600);
    expect(secretIn(join(dir, 'server.key'), systemRandom)).toEqual(secret);
    expect(await peerKeyIn(join(dir, 'peer.key'))).toEqual(peer);

    chmodSync(join(dir, 'server.key'), 0o644);
    expect(() => secretIn(join(dir, 'server.key'), systemRandom)).toThrowError(
      expect.objectContaining({ code: 'KEY_FILE_PERMISSIONS' }),
    );
    chmodSync(join(dir, 'peer.key'), 0o604);
    await expect(peerKeyIn(join(dir, 'peer.key'))).rejects.toMatchObject({
      code: 'KEY_FILE_PERMISSIONS',
      message: expect.stringContaining(`run chmod 600 ${join(dir, 'peer.key')}`),
    });
  });

  it('creates data dirs (and their missing parents) 0700 whatever the umask, and leaves existing ones alone', () => {
    const previous = process.umask(0o022);
    try {
      const dir = join(work, 'a', 'b', 'data');
      makePrivateDir(dir);
      expect(modeOf(join(work, 'a'))).toBe(0o700);
      expect(modeOf(dir)).toBe(0o700);
      secretIn(join(work, 'fresh', 'keys', 'id.key'), systemRandom);
      expect(modeOf(join(work, 'fresh'))).toBe(0o700);
      expect(modeOf(join(work, 'fresh', 'keys'))).toBe(0o700);
      const shared = join(work, 'shared');
      makePrivateDir(shared);
      chmodSync(shared, 0o755);
      makePrivateDir(shared);
      expect(modeOf(shared)).toBe(0o755);
    } finally {
      process.umask(previous);
    }
  });

  it('reads a 0600 file and reports a missing one as the fs error', () => {
    const file = join(work, 'plain.key');
    writeFileSync(file, 'x', { mode: 0o600 });
    expect(readPrivateFileSync(file).toString()).toBe('x');
    expect(existsSync(join(work, 'none'))).toBe(false);
    expect(() => readPrivateFileSync(join(work, 'none'))).toThrowError(/ENOENT/);
  });
});
