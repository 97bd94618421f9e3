// The drive page's script: every action is an S3 request to this gateway, signed here with the access key the user
// typed in (kept in this tab's session storage only). Names and keys come from whoever stored the objects, so they
// are only ever set as text, never as HTML.
import { EMPTY_SHA256, objectPath, presignUrl, signRequest, UNSIGNED_PAYLOAD } from './sigv4.js';

const CREDENTIALS_KEY = 'ailink-drive-credentials';
/** A download starts at once; the link need not outlive that. */
const DOWNLOAD_SECONDS = 15 * 60;
/** A player keeps asking for ranges as it plays and seeks: the URL must outlive a long film. */
const PLAY_SECONDS = 12 * 60 * 60;
const PLAYABLE = /\.(webm|mp4|m4v|mov|ogv|ogg|oga|mp3|m4a|wav|flac|opus)$/i;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === 'function') node.addEventListener(name, value);
    else if (value !== undefined && value !== false)
      node.setAttribute(name, value === true ? '' : String(value));
  }
  node.append(...children);
  return node;
}

// ---- credentials and signed requests ----

function credentials() {
  try {
    const parsed = JSON.parse(sessionStorage.getItem(CREDENTIALS_KEY) ?? 'null');
    return parsed?.accessKeyId && parsed?.secretAccessKey && parsed?.region ? parsed : undefined;
  } catch {
    return undefined;
  }
}

class S3Failure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const childText = (node, name) => [...node.children].find((c) => c.localName === name)?.textContent ?? '';

/** S3's XML error (`<Error><Code>…<Message>…`), or the status when the answer has none. */
async function failureOf(status, text) {
  const doc = new DOMParser().parseFromString(text || '<none/>', 'application/xml');
  const root = doc.documentElement;
  if (root?.localName === 'Error')
    return new S3Failure(
      status,
      childText(root, 'Code'),
      `${childText(root, 'Code')}: ${childText(root, 'Message')}`,
    );
  return new S3Failure(status, 'HTTP', `the gateway answered ${status}`);
}

/** A signed S3 request without a body; `headers` (lower-case names) are signed along. */
async function s3(method, path, query = [], headers = {}) {
  const creds = credentials();
  if (creds === undefined) throw new S3Failure(0, 'SignedOut', 'sign in first');
  const signed = await signRequest({
    method,
    path,
    query,
    headers: { ...headers, host: location.host },
    payloadHash: EMPTY_SHA256,
    credentials: creds,
    region: creds.region,
    now: Date.now(),
  });
  const response = await fetch(signed.url, { method, headers: signed.headers, cache: 'no-store' });
  if (!response.ok) throw await failureOf(response.status, await response.text());
  return response;
}

async function xml(method, path, query) {
  const text = await (await s3(method, path, query)).text();
  return new DOMParser().parseFromString(text, 'application/xml').documentElement;
}

/** A presigned GET of an object: a same-origin URL (path and query) anyone may use until it expires. */
function presignedGet(bucket, key, expiresSeconds) {
  const creds = credentials();
  return presignUrl({
    path: objectPath(bucket, key),
    host: location.host,
    credentials: creds,
    region: creds.region,
    now: Date.now(),
    expiresSeconds,
  });
}

async function listBuckets() {
  const root = await xml('GET', '/');
  return [...root.getElementsByTagName('Bucket')].map((b) => ({
    name: childText(b, 'Name'),
    created: childText(b, 'CreationDate'),
  }));
}

/** One level of a bucket: the folders (common prefixes with delimiter "/") and the files right under `prefix`. */
async function listFolder(bucket, prefix) {
  const folders = [];
  const files = [];
  let token;
  do {
    const query = [
      ['list-type', '2'],
      ['delimiter', '/'],
      ['prefix', prefix],
    ];
    if (token !== undefined) query.push(['continuation-token', token]);
    const root = await xml('GET', objectPath(bucket), query);
    for (const child of root.children) {
      if (child.localName === 'CommonPrefixes') folders.push(childText(child, 'Prefix'));
      if (child.localName === 'Contents') {
        files.push({
          key: childText(child, 'Key'),
          size: Number(childText(child, 'Size')),
          modified: childText(child, 'LastModified'),
        });
      }
    }
    token = childText(root, 'IsTruncated') === 'true' ? childText(root, 'NextContinuationToken') : undefined;
  } while (token);
  // A zero-byte "folder marker" object named like the folder itself is the folder, not a file in it.
  return { folders, files: files.filter((f) => f.key !== prefix) };
}

/** Every key under `prefix`, at any depth (no delimiter): what a folder holds, its marker object included. */
async function listAllUnder(bucket, prefix) {
  const keys = [];
  let token;
  do {
    const query = [
      ['list-type', '2'],
      ['prefix', prefix],
    ];
    if (token !== undefined) query.push(['continuation-token', token]);
    const root = await xml('GET', objectPath(bucket), query);
    for (const child of root.children) if (child.localName === 'Contents') keys.push(childText(child, 'Key'));
    token = childText(root, 'IsTruncated') === 'true' ? childText(root, 'NextContinuationToken') : undefined;
  } while (token);
  return keys;
}

/**
 * The first key that starts with `prefix`, or undefined: one listed key. Keys are listed in order, so when the key
 * `prefix` itself exists, it is the one.
 */
async function firstKeyUnder(bucket, prefix) {
  const root = await xml('GET', objectPath(bucket), [
    ['list-type', '2'],
    ['prefix', prefix],
    ['max-keys', '1'],
  ]);
  const first = [...root.children].find((c) => c.localName === 'Contents');
  return first === undefined ? undefined : childText(first, 'Key');
}

/**
 * CopyObject within a bucket. A long copy answers 200 at once, keeps the connection alive with spaces, and only then
 * sends its result or S3's <Error> document (the gateway's longAnswer, as S3 does): so the body, not the status,
 * says whether the copy was stored.
 */
async function copyObject(bucket, from, to) {
  const response = await s3('PUT', objectPath(bucket, to), [], {
    'x-amz-copy-source': objectPath(bucket, from),
  });
  const text = await response.text();
  const root = new DOMParser().parseFromString(text || '<none/>', 'application/xml').documentElement;
  if (root?.localName === 'Error') throw await failureOf(response.status, text);
  if (root?.localName !== 'CopyObjectResult')
    throw new S3Failure(response.status, 'HTTP', 'the gateway answered the copy without a CopyObjectResult');
}

// ---- view state: the bucket and folder live in the URL's fragment, so Back and bookmarks work ----

function view() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { bucket: params.get('bucket') ?? '', prefix: params.get('prefix') ?? '' };
}

function hrefOf(bucket, prefix = '') {
  if (bucket === '') return '#';
  const params = new URLSearchParams({ bucket });
  if (prefix !== '') params.set('prefix', prefix);
  return `#${params}`;
}

function setStatus(text, error = false) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('error', error);
  status.dataset.state = error ? 'error' : 'ok';
}

const fail = (err) => setStatus(err instanceof Error ? err.message : String(err), true);

function formatSize(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = bytes;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${units[unit]}`;
}

const nameOf = (key) => key.replace(/\/$/, '').split('/').at(-1);

// ---- rendering ----

let renderSeq = 0;
/** The files and folders of the folder on screen: a move onto one of them is refused before any request. */
let shown = { bucket: '', files: new Set(), folders: new Set() };

async function render() {
  const seq = ++renderSeq;
  const creds = credentials();
  $('login').hidden = creds !== undefined;
  $('drive').hidden = creds === undefined;
  $('sign-out').hidden = creds === undefined;
  $('who').textContent =
    creds === undefined ? '' : `${creds.accessKeyId} · ${creds.region} · ${location.host}`;
  if (creds === undefined) {
    const region = document.querySelector('meta[name="ailink-region"]')?.content ?? '';
    const field = $('login-form').elements.region;
    if (field.value === '') field.value = region.includes('{{') ? 'ailink' : region;
    return;
  }
  const { bucket, prefix } = view();
  renderCrumbs(bucket, prefix);
  $('bucket-tools').hidden = bucket !== '';
  $('object-tools').hidden = bucket === '';
  try {
    const listing = bucket === '' ? await listBuckets() : await listFolder(bucket, prefix);
    if (seq !== renderSeq) return;
    const rows = bucket === '' ? bucketRows(listing) : folderRows(bucket, listing);
    if (bucket !== '')
      shown = { bucket, files: new Set(listing.files.map((f) => f.key)), folders: new Set(listing.folders) };
    $('entries').replaceChildren(...rows);
    const empty = $('empty');
    empty.hidden = rows.length > 0;
    empty.textContent =
      bucket === ''
        ? 'No buckets yet: create one.'
        : 'This folder is empty. A folder exists once a file is stored under it: upload one here.';
    $('drive').dataset.loaded = `${bucket}/${prefix}`;
  } catch (err) {
    if (seq === renderSeq) fail(err);
  }
}

function renderCrumbs(bucket, prefix) {
  const parts = [el('a', { href: '#', 'data-testid': 'crumb', 'data-prefix': '' }, 'Buckets')];
  if (bucket !== '') {
    parts.push(
      el('span', { class: 'sep' }, '/'),
      el('a', { href: hrefOf(bucket), 'data-testid': 'crumb' }, bucket),
    );
    let at = '';
    for (const segment of prefix.split('/').filter((s) => s !== '')) {
      at += `${segment}/`;
      parts.push(
        el('span', { class: 'sep' }, '/'),
        el('a', { href: hrefOf(bucket, at), 'data-testid': 'crumb' }, segment),
      );
    }
  }
  $('crumbs').replaceChildren(...parts);
}

function bucketRows(buckets) {
  return buckets.map((b) =>
    el(
      'tr',
      { 'data-testid': 'bucket', 'data-name': b.name },
      el('td', {}, el('a', { href: hrefOf(b.name) }, `🪣 ${b.name}`)),
      el('td', { class: 'num' }),
      el('td', {}, b.created === '' ? '' : new Date(b.created).toLocaleString()),
      el('td'),
    ),
  );
}

function folderRows(bucket, { folders, files }) {
  const folderRow = (folder) =>
    el(
      'tr',
      { 'data-testid': 'folder', 'data-prefix': folder },
      el('td', {}, el('a', { href: hrefOf(bucket, folder) }, `📁 ${nameOf(folder)}/`)),
      el('td', { class: 'num' }),
      el('td'),
      el('td', { class: 'actions' }, moveButton(bucket, folder)),
    );
  const fileRow = (file) => {
    const actions = el(
      'td',
      { class: 'actions' },
      el(
        'button',
        { type: 'button', 'data-testid': 'download', click: () => download(bucket, file.key).catch(fail) },
        'Download',
      ),
      el(
        'button',
        { type: 'button', 'data-testid': 'share', click: () => openShare(bucket, file.key) },
        'Share',
      ),
      moveButton(bucket, file.key),
    );
    if (PLAYABLE.test(file.key)) {
      actions.append(
        el(
          'button',
          { type: 'button', 'data-testid': 'play', click: () => play(bucket, file.key).catch(fail) },
          'Play',
        ),
      );
    }
    actions.append(deleteButton(bucket, file.key));
    return el(
      'tr',
      { 'data-testid': 'file', 'data-key': file.key },
      el('td', {}, nameOf(file.key)),
      el('td', { class: 'num' }, formatSize(file.size)),
      el('td', {}, file.modified === '' ? '' : new Date(file.modified).toLocaleString()),
      actions,
    );
  };
  return [...folders.map(folderRow), ...files.map(fileRow)];
}

/** Deleting is for good (the chain deletes the file): the button asks for a second click instead of a dialog. */
function deleteButton(bucket, key) {
  let armed;
  const button = el('button', { type: 'button', 'data-testid': 'delete' }, 'Delete');
  button.addEventListener('click', async () => {
    if (armed === undefined) {
      button.textContent = 'Really delete?';
      armed = setTimeout(() => {
        armed = undefined;
        button.textContent = 'Delete';
      }, 4000);
      return;
    }
    clearTimeout(armed);
    try {
      await s3('DELETE', objectPath(bucket, key));
      setStatus(`deleted ${key}`);
      await render();
    } catch (err) {
      fail(err);
    }
  });
  return button;
}

const moveButton = (bucket, from) =>
  el(
    'button',
    { type: 'button', 'data-testid': 'move', click: () => openMove(bucket, from) },
    'Rename / move',
  );

// ---- actions ----

async function download(bucket, key) {
  const link = el('a', { href: await presignedGet(bucket, key, DOWNLOAD_SECONDS), download: nameOf(key) });
  document.body.append(link);
  link.click();
  link.remove();
}

function openShare(bucket, key) {
  const panel = $('share');
  panel.dataset.bucket = bucket;
  panel.dataset.key = key;
  $('share-key').textContent = key;
  $('share-result').hidden = true;
  panel.hidden = false;
  panel.scrollIntoView({ block: 'nearest' });
}

async function createShareLink(event) {
  event.preventDefault();
  const panel = $('share');
  const seconds = Number(event.target.elements.expires.value);
  const now = Date.now();
  try {
    const url = await presignedGet(panel.dataset.bucket, panel.dataset.key, seconds);
    $('share-url').value = `${location.origin}${url}`;
    const until = new Date(now + seconds * 1000);
    $('share-until').dateTime = until.toISOString();
    $('share-until').textContent = until.toLocaleString();
    $('share-result').hidden = false;
    $('share-url').select();
  } catch (err) {
    fail(err);
  }
}

async function copyShareLink() {
  const url = $('share-url').value;
  try {
    await navigator.clipboard.writeText(url);
    setStatus('link copied');
  } catch {
    // Clipboard access needs a secure context (https or localhost): leave the link selected to copy by hand.
    $('share-url').select();
    setStatus('select the link and copy it (the browser allows no clipboard access here)');
  }
}

/** The move panel: the new key (or folder) is typed over the old one, so a rename changes only the name. */
function openMove(bucket, from) {
  const panel = $('move');
  panel.dataset.bucket = bucket;
  panel.dataset.from = from;
  $('move-from').textContent = from;
  $('move-to').value = from;
  panel.hidden = false;
  panel.scrollIntoView({ block: 'nearest' });
  $('move-to').focus();
}

/**
 * Why moving `from` (a key, or a folder: a prefix ending in "/") to `to` cannot be, from what the page already
 * knows (no request), or undefined. Renaming onto a key that exists would overwrite it.
 */
function moveRefusal(bucket, from, to) {
  const folder = from.endsWith('/');
  if (to === '' || to === '/') return folder ? 'type the folder’s new name' : 'type the file’s new key';
  if (to === from) return `${from} already has that ${folder ? 'name' : 'key'}`;
  const known = shown.bucket === bucket ? shown : { files: new Set(), folders: new Set() };
  if (folder) {
    if (to.startsWith(from)) return `${from} cannot move into itself`;
    if (known.folders.has(to)) return `a folder ${to} already exists`;
  } else {
    // A key ending in "/" is a folder's marker, which the listing shows as the folder, not as this file.
    if (to.endsWith('/')) return 'a file’s key cannot end in /';
    if (known.files.has(to)) return `${to} already exists`;
  }
  return undefined;
}

/** An object moves by CopyObject, then DeleteObject of the source once the copy is stored: never the other way. */
async function moveObject(bucket, from, to) {
  // Outside the folder on screen too: a move must not overwrite what is there.
  if ((await firstKeyUnder(bucket, to)) === to) throw new S3Failure(0, 'Exists', `${to} already exists`);
  setStatus(`moving ${from} to ${to}…`);
  await copyObject(bucket, from, to);
  try {
    await s3('DELETE', objectPath(bucket, from));
  } catch (err) {
    throw new S3Failure(0, 'Delete', `copied to ${to}, but deleting ${from} failed: ${err.message}`);
  }
  setStatus(`moved ${from} to ${to}`);
}

/**
 * A folder is only a prefix of keys: it moves by copying every object under it, and deletes them only once all are
 * copied. A failed copy stops the move with nothing deleted, so every object is still where it was.
 */
async function moveFolder(bucket, from, to) {
  if ((await firstKeyUnder(bucket, to)) !== undefined)
    throw new S3Failure(0, 'Exists', `a folder ${to} already exists`);
  const keys = await listAllUnder(bucket, from);
  for (const [i, key] of keys.entries()) {
    setStatus(`moving ${from} to ${to}: copying ${i + 1} of ${keys.length}`);
    try {
      await copyObject(bucket, key, `${to}${key.slice(from.length)}`);
    } catch (err) {
      throw new S3Failure(
        0,
        'Copy',
        `copying ${key} failed (${err.message}): nothing was deleted` +
          (i === 0 ? '' : `; ${i} ${i === 1 ? 'copy is' : 'copies are'} left under ${to}`),
      );
    }
  }
  for (const [i, key] of keys.entries()) {
    setStatus(`moving ${from} to ${to}: deleting ${i + 1} of ${keys.length}`);
    try {
      await s3('DELETE', objectPath(bucket, key));
    } catch (err) {
      throw new S3Failure(0, 'Delete', `all copied to ${to}, but deleting ${key} failed: ${err.message}`);
    }
  }
  setStatus(`moved ${from} to ${to} (${keys.length} ${keys.length === 1 ? 'object' : 'objects'})`);
}

async function submitMove(event) {
  event.preventDefault();
  const panel = $('move');
  const { bucket, from } = panel.dataset;
  const typed = $('move-to').value.trim();
  // A folder's new name, however typed ("a/b", "/a/b/"), is the prefix "a/b/".
  const to = from.endsWith('/') ? `${typed.replace(/^\/+|\/+$/g, '')}/` : typed;
  const refusal = moveRefusal(bucket, from, to);
  if (refusal !== undefined) {
    fail(refusal);
    return;
  }
  const submit = $('move-submit');
  submit.disabled = true;
  try {
    await (from.endsWith('/') ? moveFolder(bucket, from, to) : moveObject(bucket, from, to));
    panel.hidden = true;
  } catch (err) {
    fail(err);
  } finally {
    submit.disabled = false;
    await render();
  }
}

/** The player reads through a presigned URL, so the browser's own ranged reads (206) do the streaming. */
async function play(bucket, key) {
  const video = $('video');
  video.src = await presignedGet(bucket, key, PLAY_SECONDS);
  $('player-key').textContent = key;
  $('player').hidden = false;
  $('player').scrollIntoView({ block: 'nearest' });
  video.play().catch(() => {
    // A browser that refuses to start playing by itself leaves the controls to the user.
  });
}

/** One upload: a signed PutObject sent by XMLHttpRequest, whose upload events drive the progress bar. */
async function upload(bucket, key, file) {
  const bar = el('progress', { max: 100, value: 0 });
  const percent = el('span', { 'data-testid': 'upload-percent' }, '0 %');
  const state = el('span', { 'data-testid': 'upload-state' }, 'signing');
  const row = el(
    'li',
    { 'data-testid': 'upload', 'data-key': key, 'data-state': 'running' },
    el('span', {}, key),
    bar,
    percent,
    state,
  );
  $('uploads').append(row);
  const show = (fraction) => {
    bar.value = Math.round(fraction * 100);
    percent.textContent = `${Math.round(fraction * 100)} %`;
  };
  const creds = credentials();
  const signed = await signRequest({
    method: 'PUT',
    path: objectPath(bucket, key),
    headers: { host: location.host },
    payloadHash: UNSIGNED_PAYLOAD,
    credentials: creds,
    region: creds.region,
    now: Date.now(),
  });
  await new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', signed.url);
    for (const [name, value] of Object.entries(signed.headers)) xhr.setRequestHeader(name, value);
    xhr.setRequestHeader('content-type', file.type || 'application/octet-stream');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && e.total > 0) show(e.loaded / e.total);
    });
    // Every byte sent: the gateway now stores the object on the network before it answers.
    xhr.upload.addEventListener('load', () => {
      show(1);
      state.textContent = 'storing';
    });
    xhr.addEventListener('load', async () => {
      if (xhr.status === 200) {
        show(1);
        state.textContent = 'stored';
        row.dataset.state = 'done';
      } else {
        state.textContent = (await failureOf(xhr.status, xhr.responseText)).message;
        state.classList.add('failed');
        row.dataset.state = 'failed';
      }
      resolve();
    });
    xhr.addEventListener('error', () => {
      state.textContent = 'the connection failed';
      state.classList.add('failed');
      row.dataset.state = 'failed';
      resolve();
    });
    state.textContent = 'uploading';
    xhr.send(file);
  });
}

async function uploadFiles(event) {
  const input = event.target;
  const files = [...input.files];
  input.value = '';
  const { bucket, prefix } = view();
  // One after another: the gateway stores each object on the network as it reads it.
  for (const file of files) await upload(bucket, `${prefix}${file.name}`, file);
  await render();
}

// ---- wiring ----

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target.elements;
  const creds = {
    accessKeyId: form.accessKeyId.value.trim(),
    secretAccessKey: form.secretAccessKey.value.trim(),
    region: form.region.value.trim(),
  };
  sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(creds));
  setStatus('signing in…');
  try {
    await listBuckets(); // the key is checked by the gateway, as on every request
    form.secretAccessKey.value = '';
    setStatus('');
    await render();
  } catch (err) {
    sessionStorage.removeItem(CREDENTIALS_KEY);
    fail(err);
  }
});

$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(CREDENTIALS_KEY);
  $('share').hidden = true;
  $('move').hidden = true;
  $('player').hidden = true;
  $('video').removeAttribute('src');
  location.hash = '';
  void render();
});

$('new-bucket-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = event.target.elements.name.value.trim();
  try {
    await s3('PUT', objectPath(name));
    event.target.reset();
    setStatus(`created bucket ${name}`);
    location.hash = hrefOf(name);
  } catch (err) {
    fail(err);
  }
});

$('new-folder-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = event.target.elements.name.value.trim().replace(/^\/+|\/+$/g, '');
  if (name === '') return;
  const { bucket, prefix } = view();
  event.target.reset();
  location.hash = hrefOf(bucket, `${prefix}${name}/`);
});

$('file-input').addEventListener('change', (event) => {
  uploadFiles(event).catch(fail);
});
$('share-form').addEventListener('submit', createShareLink);
$('share-copy').addEventListener('click', copyShareLink);
$('share-close').addEventListener('click', () => {
  $('share').hidden = true;
});
$('move-form').addEventListener('submit', submitMove);
$('move-close').addEventListener('click', () => {
  $('move').hidden = true;
});
$('player-close').addEventListener('click', () => {
  const video = $('video');
  video.pause();
  video.removeAttribute('src');
  video.load();
  $('player').hidden = true;
});
window.addEventListener('hashchange', () => {
  setStatus('');
  // The panel names a key of the folder that was on screen.
  $('move').hidden = true;
  void render();
});

void render();
