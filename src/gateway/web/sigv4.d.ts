// The types of sigv4.js (plain JavaScript, so that the browser loads it without a build step).

export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export declare const ALGORITHM: 'AWS4-HMAC-SHA256';
export declare const UNSIGNED_PAYLOAD: 'UNSIGNED-PAYLOAD';
export declare const EMPTY_SHA256: string;
export declare const MAX_PRESIGNED_SECONDS: number;

export declare function uriEncode(value: string, keepSlash?: boolean): string;
export declare function objectPath(bucket: string, key?: string): string;
export declare function amzDateOf(ms: number): string;

export declare function signRequest(request: {
  readonly method: string;
  /** Encoded as objectPath encodes it. */
  readonly path: string;
  readonly query?: readonly (readonly [string, string])[];
  /** Lower-case names; must include host. */
  readonly headers: Readonly<Record<string, string>>;
  readonly payloadHash?: string;
  readonly credentials: Credentials;
  readonly region: string;
  /** ms since the epoch */
  readonly now: number;
}): Promise<{ url: string; headers: Record<string, string> }>;

export declare function presignUrl(request: {
  readonly method?: string;
  readonly path: string;
  readonly query?: readonly (readonly [string, string])[];
  readonly host: string;
  readonly credentials: Credentials;
  readonly region: string;
  readonly now: number;
  readonly expiresSeconds: number;
}): Promise<string>;
