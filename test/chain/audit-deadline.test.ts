import { describe, expect, it } from 'vitest';
import { CESS_AUDIT } from '../../src/chain/config.ts';
import { challengeBlocks } from '../../src/chain/pallets/audit.ts';

/**
 * Issue 15 item 5: the blocks a challenge gets must stay far below the time to regenerate a challenged idle file,
 * whatever idle space the miner holds. CESS's slip grows with all idle space; ours with the files a proof can open.
 */
describe('challengeBlocks', () => {
  const audit = {
    ...CESS_AUDIT,
    slipBaseBlocks: 10,
    serviceBytesPerBlock: 1000,
    idleBytesPerBlock: 64 * 32,
    proofs: { ...CESS_AUDIT.proofs, idleNodes: 64, idleOpenings: 4 },
  };

  it('is the base plus the larger of the service and the idle slip', () => {
    expect(challengeBlocks(audit, 0, 0)).toBe(10);
    expect(challengeBlocks(audit, 2500, 0)).toBe(13);
    expect(challengeBlocks(audit, 0, 2)).toBe(12); // one block per 2 KiB idle file
    expect(challengeBlocks(audit, 2500, 2)).toBe(13);
  });

  it('counts at most idleOpenings idle files, however many the miner holds', () => {
    expect(challengeBlocks(audit, 0, 4)).toBe(14);
    expect(challengeBlocks(audit, 0, 5)).toBe(14);
    expect(challengeBlocks(audit, 0, 1_000_000)).toBe(14);
    expect(challengeBlocks(audit, 9000, 1_000_000)).toBe(19); // service data still counts in full
  });

  it('at CESS_AUDIT, any idle space gets at most 56 blocks (5.6 min at 6-second blocks)', () => {
    expect(challengeBlocks(CESS_AUDIT, 0, 1)).toBe(51);
    expect(challengeBlocks(CESS_AUDIT, 0, 16)).toBe(56);
    expect(challengeBlocks(CESS_AUDIT, 0, 16_384)).toBe(56); // 1 TiB of 64 MiB idle files
  });
});
