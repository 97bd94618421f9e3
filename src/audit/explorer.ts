import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AilinkError } from '../shared/errors.ts';

/**
 * The lineage explorer page, one page for two servers (issue 19 §5):
 * - `ailink audit serve` (serve.ts): the auditor's own view — the task list from its own index of the chain, every
 *   badge from an audit it ran itself over its own fetches; nothing comes from the coordinator.
 * - the coordinator's `GET /explorer`: the audited party's own view, labelled as such on the page.
 *
 * Its files live in explorer/ beside this module: index.html, explorer.css and explorer.js. They ship with the
 * sources, which run as they are (src/shared/bundle.mjs keeps each module's `import.meta.url` its source file's URL
 * inside a bundle, so `./explorer/` resolves to the same directory from tsx and from the bundled CLI). The style and
 * script are inlined into the one HTML answer and allowed by their SHA-256 in the Content-Security-Policy: the page is
 * a single request with no external asset, and nothing but exactly these bytes may run or style it.
 *
 * Everything the page shows can come from objects a stranger stored (a task name, a finding quoting a manifest): the
 * script only ever sets `textContent` and attributes, never HTML.
 */

/** Whose view the page is: it labels itself and reads its data accordingly. */
export type ExplorerView = 'coordinator' | 'auditor';

export interface ExplorerPage {
  readonly html: string;
  /** The Content-Security-Policy the page must be served with. */
  readonly csp: string;
  /** Every header of the page's answer, the policy included. */
  readonly headers: Readonly<Record<string, string>>;
}

const DIR = new URL('./explorer/', import.meta.url);
const pages = new Map<ExplorerView, ExplorerPage>();

const sha256Base64 = (text: string) => createHash('sha256').update(text, 'utf8').digest('base64');

/** The page for `view`, read from explorer/ once per process. */
export function explorerPage(view: ExplorerView): ExplorerPage {
  const known = pages.get(view);
  if (known !== undefined) return known;
  const read = (name: string) => readFileSync(new URL(name, DIR), 'utf8');
  const style = read('explorer.css');
  const script = read('explorer.js');
  // Inlined as they are: text that would close its element early is refused rather than served broken.
  if (/<\/style/i.test(style) || /<\/script/i.test(script) || /<!--/.test(script))
    throw new AilinkError(
      'INTERNAL',
      'explorer/: the style or script holds text that would end its element inside the HTML',
    );
  const html = read('index.html')
    .replace('{{view}}', view)
    .replace('{{style}}', () => style)
    .replace('{{script}}', () => script);
  // Only the page's own script and style run, it talks only to its own origin, and it cannot be framed: a string
  // that slipped past the script's text-only rendering would still find nothing to execute.
  const csp = [
    "default-src 'none'",
    `script-src 'sha256-${sha256Base64(script)}'`,
    `style-src 'sha256-${sha256Base64(style)}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const page: ExplorerPage = {
    html,
    csp,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': csp,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
      'cache-control': 'no-cache',
    },
  };
  pages.set(view, page);
  return page;
}
