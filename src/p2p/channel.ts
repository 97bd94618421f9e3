import type { Stream } from '@libp2p/interface';
import { byteStream } from '@libp2p/utils';

/**
 * A bidirectional byte channel over one libp2p stream, with the small set of operations our protocols need: length-
 * prefixed JSON-sized frames for headers, exact-length reads for bulk bodies, and writes that wait for the transport
 * to drain (backpressure). Keeps libp2p's types inside src/p2p.
 */
export interface ByteChannel {
  /** The remote peer's id (base58 string). */
  readonly remotePeer: string;
  /** Reads one frame written by `writeFrame`; throws if it announces more than `maxBytes`. */
  readFrame(maxBytes: number, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  writeFrame(bytes: Uint8Array, options?: { signal?: AbortSignal }): Promise<void>;
  /** Reads exactly `length` bytes; throws ChannelClosedError if the peer closes before. */
  readExactly(length: number, options?: { signal?: AbortSignal }): Promise<Uint8Array>;
  /** Reads whatever is available (up to the buffered amount); null at the end of the stream. */
  readSome(options?: { signal?: AbortSignal }): Promise<Uint8Array | null>;
  /** Writes, waiting for the transport to drain when its buffer is full. */
  write(bytes: Uint8Array, options?: { signal?: AbortSignal }): Promise<void>;
  /** Closes our writing side; the peer reads the end of the stream. */
  closeWrite(options?: { signal?: AbortSignal }): Promise<void>;
  /** Tears the stream down at once (both sides). */
  abort(reason: Error): void;
}

export class ChannelClosedError extends Error {
  override readonly name = 'ChannelClosedError';
}

export class FrameTooLargeError extends Error {
  override readonly name = 'FrameTooLargeError';
}

const FRAME_HEADER = 4;
const SMALL_READ = 64 * 1024;

/** Bulk bodies are written in pieces of this size so that backpressure acts at a fine grain. */
const WRITE_PIECE = 256 * 1024;

export function channelOf(stream: Stream, remotePeer: string, maxBufferSize: number): ByteChannel {
  const bytes = byteStream(stream, { maxBufferSize });
  // Bodies are consumed as they arrive (not awaited whole), so the read buffer never holds more than what one
  // turn of the event loop delivered.
  const readExactly = async (length: number, options?: { signal?: AbortSignal }): Promise<Uint8Array> => {
    if (length <= SMALL_READ) {
      if (length === 0) return new Uint8Array(0);
      try {
        return (await bytes.read({ bytes: length, ...options })).subarray();
      } catch (err) {
        if ((err as Error).name === 'UnexpectedEOFError')
          throw new ChannelClosedError((err as Error).message);
        throw err;
      }
    }
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const got = await bytes.read(options);
      if (got === null) throw new ChannelClosedError(`stream ended after ${filled} of ${length} bytes`);
      if (filled + got.byteLength > length) {
        // More than asked for arrived; the rest belongs to whoever reads next. Not expected in our protocols.
        throw new ChannelClosedError(`expected ${length} bytes, the peer sent more`);
      }
      for (const piece of got) {
        out.set(piece, filled);
        filled += piece.byteLength;
      }
    }
    return out;
  };
  return {
    remotePeer,
    async readFrame(maxBytes, options) {
      const head = await readExactly(FRAME_HEADER, options);
      const length = new DataView(head.buffer, head.byteOffset, FRAME_HEADER).getUint32(0);
      if (length > maxBytes)
        throw new FrameTooLargeError(`expected a frame of ≤ ${maxBytes} bytes, got ${length}`);
      return readExactly(length, options);
    },
    async writeFrame(body, options) {
      const framed = new Uint8Array(FRAME_HEADER + body.byteLength);
      new DataView(framed.buffer).setUint32(0, body.byteLength);
      framed.set(body, FRAME_HEADER);
      await bytes.write(framed, options);
    },
    readExactly,
    async readSome(options) {
      const got = await bytes.read(options);
      return got === null ? null : got.subarray();
    },
    async write(body, options) {
      for (let off = 0; off < body.byteLength; off += WRITE_PIECE) {
        await bytes.write(body.subarray(off, Math.min(off + WRITE_PIECE, body.byteLength)), options);
      }
    },
    async closeWrite(options) {
      await stream.close(options);
    },
    abort(reason) {
      stream.abort(reason);
    },
  };
}
