import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { escapeXml } from './s3-xml.ts';

/**
 * The drive page (issue 16 §6): a web page the gateway serves at `/_ailink/` to browse buckets and folders, upload
 * with a progress bar, download, make share links and play videos. A path no S3 bucket can take (bucket names start
 * with a letter or a digit), so path-style S3 is untouched; on a virtual host (`<bucket>.<domain>`) the same path is
 * a key of that bucket and stays S3's.
 *
 * The page holds no server-side power of its own: it asks for the gateway's S3 access key (gateway.json) and signs
 * real S3 requests in the browser with SigV4 (web/sigv4.js, WebCrypto), the same API and the same checks as every S3
 * tool. So only the static files are served without a signature, and they reveal nothing but the region.
 *
 * The assets are read once from web/ beside this module (they ship with the sources, which run as they are); the
 * page's script and style are files, never inline, so the Content-Security-Policy allows only this origin's.
 */

export const WEB_PREFIX = '/_ailink/';

/**
 * Only this origin's script, style, media and requests; no frames, no plugins, no form posts, no base rewriting.
 * `img-src data:`: the page's empty icon, so the browser does not ask S3 for /favicon.ico.
 */
export const WEB_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'sigv4.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

/** What to answer: a status, headers and a body (absent for HEAD, 304 and redirects). */
export interface WebAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: Buffer;
  /** A refusal: answered as an S3 error of this code (its XML body, or only the status for HEAD), with `headers`. */
  readonly error?: { readonly code: 'NoSuchKey'; readonly message: string };
}

export interface WebRequest {
  readonly method: string;
  /** The path as sent, without the query. */
  readonly path: string;
  readonly query: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export interface WebPage {
  /** The answer for a page request, or undefined when the request is S3's. Pure over the loaded files. */
  answer(request: WebRequest): WebAnswer | undefined;
}

const COMMON = {
  'content-security-policy': WEB_CSP,
  'x-content-type-options': 'nosniff',
  // The page's own requests are same-origin; a presigned URL in a page must not travel in a Referer elsewhere.
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const single = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(',') : v);

/**
 * Loads the page's files (once) and answers its requests.
 * @param options.region the region the page's signatures are for, prefilled in its sign-in form
 */
export function loadWebPage(options: { region: string; dir?: URL }): WebPage {
  const dir = options.dir ?? new URL('./web/', import.meta.url);
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(TYPES)) {
    let body = readFileSync(new URL(name, dir));
    if (name === 'index.html')
      body = Buffer.from(body.toString('utf8').replace('{{region}}', escapeXml(options.region)), 'utf8');
    assets.set(name, {
      body,
      type,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    });
  }

  return {
    answer(request): WebAnswer | undefined {
      if (request.method !== 'GET' && request.method !== 'HEAD') return undefined;
      const headers = request.headers;
      // A browser opening the gateway's URL (gateway.json) gets the page; a signed or presigned request stays S3's.
      if (request.path === '/') {
        const browser = /\btext\/html\b/.test(single(headers.accept) ?? '');
        const signed = headers.authorization !== undefined || /(^|&)X-Amz-Signature=/.test(request.query);
        return browser && !signed
          ? { status: 303, headers: { location: WEB_PREFIX, 'cache-control': 'no-store' } }
          : undefined;
      }
      if (request.path === WEB_PREFIX.slice(0, -1))
        return { status: 301, headers: { location: WEB_PREFIX, 'cache-control': 'no-store' } };
      if (!request.path.startsWith(WEB_PREFIX)) return undefined;
      const name = request.path.slice(WEB_PREFIX.length) || 'index.html';
      const asset = assets.get(name);
      if (asset === undefined) {
        // An S3 error like every other refusal of the gateway (found by the fuzz edges: a plain-text 404 carried no
        // code a client could read).
        return {
          status: 404,
          headers: COMMON,
          error: { code: 'NoSuchKey', message: `no such page file: ${name}` },
        };
      }
      // Revalidated on every load (the names carry no version), answered 304 while unchanged.
      const cached = {
        ...COMMON,
        'content-type': asset.type,
        etag: asset.etag,
        'cache-control': 'no-cache',
      };
      if (single(headers['if-none-match']) === asset.etag) return { status: 304, headers: cached };
      return {
        status: 200,
        headers: { ...cached, 'content-length': String(asset.body.byteLength) },
        ...(request.method === 'HEAD' ? {} : { body: asset.body }),
      };
    },
  };
}
