import { describe, expect, it } from 'vitest';
import * as p2p from '../../src/p2p/index.ts';
import { ERROR_CODES } from '../../src/shared/errors.ts';
import * as storage from '../../src/storage/index.ts';

// The public surfaces are explicit lists; a change to them shows up here as a reviewable diff.
describe('module surfaces', () => {
  it('src/storage exports exactly these names', () => {
    expect(Object.keys(storage).sort()).toMatchInlineSnapshot(`
      [
        "FRAGMENT_PROTOCOL",
        "FragmentRequestSchema",
        "HASH_RE",
        "NetworkFileSchema",
        "ObjectRecordSchema",
        "PODR2_LANES",
        "PODR2_PRIME",
        "PRODUCTION_PROFILE",
        "TEST_PROFILE",
        "VERIFIER_PROTOCOL",
        "blocksOf",
        "buildAuditProof",
        "checkAuditProof",
        "checkProfile",
        "chunks",
        "columnsOf",
        "createChainRegistry",
        "createCodecPool",
        "createGrantService",
        "createMarketClient",
        "createMemoryRegistry",
        "createMinerClient",
        "createRequestGuard",
        "createStorageClient",
        "createVerifierClient",
        "declarationBatch",
        "decodeIdleProof",
        "decodeProof",
        "decodeSegment",
        "deriveChallenge",
        "deriveIdleChallenge",
        "derivePodr2Key",
        "encodeForStorage",
        "encodeIdleProof",
        "encodeProof",
        "encodeSegment",
        "fidOf",
        "fragmentBody",
        "fragmentHash",
        "fragmentSizeOf",
        "generateX25519",
        "idleFileBytes",
        "idleRoot",
        "joinChain",
        "labelIdleFile",
        "loadNetworkFile",
        "minerChainActions",
        "openFragmentStore",
        "openReaderGroup",
        "openSegment",
        "openSqliteRegistry",
        "openStored",
        "plaintextLength",
        "podr2KeyId",
        "podr2Params",
        "poisParams",
        "profileForSize",
        "proofParams",
        "proveChallenge",
        "proveIdle",
        "rebuildColumns",
        "sealReaderGroup",
        "sealSegment",
        "segmentHash",
        "signRequest",
        "startAuditAgent",
        "startMinerService",
        "startVerifierService",
        "storedSegment",
        "tagFragment",
        "termsWithReader",
        "unwrapDataKey",
        "verifyIdle",
        "verifyProof",
        "wrapDataKey",
        "writeNetworkFile",
        "x25519PublicOf",
        "zeroFragmentHash",
      ]
    `);
  });

  it('src/p2p exports exactly these names', () => {
    expect(Object.keys(p2p).sort()).toMatchInlineSnapshot(`
      [
        "ChannelClosedError",
        "FrameTooLargeError",
        "LOOPBACK_LISTEN",
        "createHost",
        "newPeerKey",
        "signWithPeerKey",
      ]
    `);
  });

  it('every error code maps to an HTTP status and says what it means', () => {
    for (const [code, { status, about }] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(status).toBeGreaterThanOrEqual(400);
      expect(about.length).toBeGreaterThan(10);
    }
  });
});
