// The browser suite's helpers: the servers (servers.pl), Debian's chromium
// through playwright-core, the watch on console errors and CSP violations,
// axe-core, the Maildir and the software keyboard driven by mouse clicks.
'use strict';

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { chromium } = require('playwright-core');

const ROOT = path.resolve(__dirname, '..', '..');

// The flags this machine's closed network needs (see the README).
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Starts servers.pl; resolves to its description, with stop() that ends it
// and resolves to the error-log lines that fail the suite.
function startServers() {
  const env = { ...process.env, CERTGATE_BUILD: process.env.CERTGATE_BUILD || path.join(ROOT, 'build-test') };
  const child = spawn('perl', [path.join(__dirname, 'servers.pl')], {
    cwd: ROOT, env, stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const queue = [];
  const waiting = [];
  lines.on('line', (line) => {
    if (waiting.length) waiting.shift()(line); else queue.push(line);
  });
  const nextLine = () => new Promise((resolve, reject) => {
    if (queue.length) return resolve(queue.shift());
    waiting.push(resolve);
    child.once('exit', (code) => reject(new Error(`servers.pl exited (${code})`)));
  });
  return nextLine().then((line) => {
    const info = JSON.parse(line);
    info.stop = async () => {
      child.stdin.end();
      const last = await nextLine().catch(() => '{"bad_log_lines":["servers.pl ended badly"]}');
      return JSON.parse(last).bad_log_lines;
    };
    return info;
  });
}

function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

// A browser context as a clerk's browser: the language, downloads allowed,
// the test CA's server certificate accepted. Every page opened in it is
// watched: console errors, uncaught exceptions and CSP violations land in
// ctx.problems.
async function newContext(browser, server, opts = {}) {
  const ctx = await browser.newContext({
    ignoreHTTPSErrors: true,
    acceptDownloads: true,
    locale: opts.lang === 'en' ? 'en-US' : 'ja-JP',
    viewport: { width: 1100, height: 900 },
    ...(opts.clientCertificates ? { clientCertificates: opts.clientCertificates } : {}),
  });
  ctx.problems = [];
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  ctx.on('page', (page) => watchPage(ctx, page));
  return ctx;
}

function watchPage(ctx, page) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // The browser's own favicon request goes to the origin's root, which
    // belongs to the business application, not to certgate.
    const from = msg.location().url || '';
    if (/\/favicon\.ico$/.test(from)) return;
    // A screen answered with an error status (a 400 for a broken rule, the
    // 404 page) is the server's answer, not a fault of the page.
    if (from === page.url() && /^Failed to load resource/.test(msg.text())) return;
    ctx.problems.push(`${page.url()}: console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => ctx.problems.push(`${page.url()}: uncaught: ${err.message}`));
}

const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

// axe-core's serious and critical violations on the page as it is now.
// axe goes in through the DevTools protocol, so the page's CSP stays strict.
async function axeViolations(page) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

// Decodes one mail of the Maildir: { to, subject, body }.
function parseMail(raw) {
  const split = raw.search(/\r?\n\r?\n/);
  const head = raw.slice(0, split).replace(/\r?\n[ \t]+/g, ' ');
  let body = raw.slice(split).trim();
  const h = {};
  for (const line of head.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) h[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  if (/base64/i.test(h['content-transfer-encoding'] || '')) {
    body = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  } else if (/quoted-printable/i.test(h['content-transfer-encoding'] || '')) {
    body = Buffer.from(body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi,
      (_, x) => String.fromCharCode(parseInt(x, 16))), 'latin1').toString('utf8');
  }
  return { to: h.to || '', subject: h.subject || '', body };
}

function mailsTo(server, user) {
  const out = [];
  for (const sub of ['new', 'cur']) {
    const dir = path.join(server.maildir, sub);
    for (const f of fs.readdirSync(dir)) {
      const file = path.join(dir, f);
      out.push({ mtime: fs.statSync(file).mtimeMs, ...parseMail(fs.readFileSync(file, 'utf8')) });
    }
  }
  return out.filter((m) => m.to.includes(user)).sort((a, b) => a.mtime - b.mtime);
}

// The newest authentication code mailed to the user, waiting for it.
async function authCode(server, user, after = 0) {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const mails = mailsTo(server, user).filter((m) => m.mtime >= after);
    for (const m of mails.reverse()) {
      const code = m.body.match(/(?:認証コード|code)\D{0,40}?(\d{6})(?!\d)/i);
      if (code) return code[1];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no authentication code mailed to ${user}`);
}

// Types text into the password field `target` with the software keyboard,
// by mouse clicks only: open it, pick the mode of each character, click its
// key. Leaves the keyboard open.
async function typeWithKeyboard(page, target, text) {
  const opener = page.locator(`.cg-keyboard-open[data-target="${target}"]`);
  const panel = page.locator(`.cg-keyboard[data-target="${target}"]`);
  if (!(await panel.isVisible().catch(() => false))) await opener.click();
  for (const ch of text) {
    let mode = 'symbol';
    if (/[A-Z]/.test(ch)) mode = 'upper';
    else if (/[a-z]/.test(ch)) mode = 'lower';
    else if (/[0-9]/.test(ch)) mode = null;
    if (mode === null) {
      // Digits sit on both letter pages.
      const current = await panel.locator('.cg-kb-mode[aria-pressed="true"]').getAttribute('data-mode');
      if (current === 'symbol') mode = 'upper';
    }
    if (mode !== null) {
      const button = panel.locator(`.cg-kb-mode[data-mode="${mode}"]`);
      if ((await button.getAttribute('aria-pressed')) !== 'true') await button.click();
    }
    const sel = ch.replace(/["\\]/g, '\\$&');
    await panel.locator(`.cg-key[data-key="${sel}"]`).click();
  }
}

// The order of the keys on every page of the keyboard, as one string per mode.
async function keyboardLayout(page, target) {
  const panel = page.locator(`.cg-keyboard[data-target="${target}"]`);
  const layout = {};
  for (const mode of ['upper', 'lower', 'symbol']) {
    await panel.locator(`.cg-kb-mode[data-mode="${mode}"]`).click();
    layout[mode] = (await panel.locator('.cg-key').evaluateAll((keys) => keys.map((k) => k.getAttribute('data-key')))).join('');
  }
  return layout;
}

// certgatectl on the servers' store; `input` goes to its standard input.
function certgatectl(server, args, input) {
  return execFileSync(server.certgatectl, ['--store', server.store, ...args],
    { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

// A client certificate of the servers' CA for `user` of `org` (valid `days`),
// recorded in the store, as a .p12 in `dir` protected by `password`; returns
// its path. Quicker than the issuance walk where that walk is not the point.
function clientCertificate(server, dir, org, user, password, days = 300) {
  const base = path.join(dir, user);
  const quiet = { stdio: 'ignore' };
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-subj', `/O=${org}/CN=${user}`, '-keyout', `${base}.key`, '-out', `${base}.csr`], quiet);
  fs.writeFileSync(`${base}.ext`,
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  execFileSync('openssl', ['x509', '-req', '-set_serial', String(Math.floor(Math.random() * 2 ** 40) + 2),
    '-days', String(days), '-in', `${base}.csr`, '-CA', server.ca, '-CAkey', path.join(server.dir, 'ca.key'),
    '-extfile', `${base}.ext`, '-out', `${base}.crt`], quiet);
  certgatectl(server, ['cert', 'import', `${base}.crt`, '--user', user]);
  execFileSync('openssl', ['pkcs12', '-export', '-inkey', `${base}.key`, '-in', `${base}.crt`,
    '-passout', `pass:${password}`, '-out', `${base}.p12`], quiet);
  return `${base}.p12`;
}

module.exports = {
  ROOT, startServers, launchBrowser, newContext, axeViolations, authCode, mailsTo,
  typeWithKeyboard, keyboardLayout, certgatectl, clientCertificate,
};
