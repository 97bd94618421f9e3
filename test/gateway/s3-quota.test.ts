import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Namespace } from '../../src/gateway/namespace.ts';
import { buildS3App } from '../../src/gateway/s3.ts';
import { KEY, REGION, sdkSigner } from './sdk-signer.ts';

// The S3 API refuses up front an upload whose declared length exceeds the account's storage space left: 403
// QuotaExceeded before a byte of the body is read or anything is stored. (The chain's own refusal, for uploads whose
// length was not declared, is mapped in test/gateway/s3.test.ts and test/storage/chain-registry.test.ts.)

const NOW = Date.UTC(2026, 11, 3, 12, 0, 0);
const LEFT = 1000;

function appWith(stored: string[]) {
  const namespace = {
    owner: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY',
    bucket: async (name: string) =>
      name === 'b-0' ? { created: 0, objectLock: false, defaultRetention: null } : undefined,
    object: async () => undefined,
    spaceLeft: async () => LEFT,
  } as unknown as Namespace;
  return buildS3App({
    storage: {
      put: async (bytes: AsyncIterable<Uint8Array>) => {
        for await (const _ of bytes);
        stored.push('put');
        return {} as never;
      },
      get: () => {
        throw new Error('not used');
      },
    },
    namespace,
    uploads: {} as never,
    credentials: KEY,
    region: REGION,
    clock: { now: () => NOW },
    random: (n: number) => new Uint8Array(n),
  });
}

async function put(body: string) {
  const signed = await sdkSigner.sign(
    {
      method: 'PUT',
      protocol: 'http:',
      hostname: 'gateway.local',
      port: 9000,
      path: '/b-0/k',
      query: {},
      headers: {
        host: 'gateway.local:9000',
        'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
        'content-length': String(body.length),
      },
      body,
    },
    { signingDate: new Date(NOW) },
  );
  return { url: '/b-0/k', method: 'PUT' as const, headers: signed.headers, payload: body };
}

describe('S3 PutObject and the storage space left', () => {
  it('a Content-Length beyond the space left → 403 QuotaExceeded, nothing stored; one that fits is stored', async () => {
    const stored: string[] = [];
    const app = appWith(stored);
    const refused = await app.inject(await put('x'.repeat(LEFT + 1)));
    expect(refused.statusCode).toBe(403);
    expect(refused.body).toContain('<Code>QuotaExceeded</Code>');
    expect(refused.body).toMatch(/does not fit the .* \(1000 B\) of storage space .* left; buy more with/);
    expect(stored).toEqual([]);
    const fits = await app.inject(await put('x'.repeat(LEFT)));
    expect(fits.statusCode).toBe(200);
    expect(stored).toEqual(['put']);
    await app.close();
  });
});
