// Issue 16 (part B) in Debian's chromium: English chosen once stays for
// every following page, POST answer and mail of that user; the rule
// messages a clerk meets first (a full-width ID, a password one character
// too long typed on the software keyboard, which counts no failure); and the
// self-service PC change (R20) from a second browser profile, which ends
// with the old certificate refused and the new one logged in.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const lib = require('./lib');

let server;
let browser;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-e2e-lang-'));
const PASSWORD = 'Lg#2026pass';

before(async () => {
  server = await lib.startServers();
  browser = await lib.launchBrowser();
  // This file's own users, so that it shares nothing with the other files.
  ctl(['org', 'add', 'E2EORG2', '--name', 'Second Org']);
  for (const [kind, org, user] of [
    ['add-general', 'E2EORG1', 'languser01'], ['add-general', 'E2EORG1', 'ruleuser01'],
    ['add-master', 'E2EORG2', 'langmast01'], ['add-general', 'E2EORG2', 'pcchange01'],
  ]) {
    ctl(['user', kind, org, user, '--mail', `${user}@example.test`, '--password-stdin'], `${PASSWORD}\n`);
  }
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    const bad = await server.stop();
    assert.deepEqual(bad, [], 'no [alert], [emerg] or [crit] in the nginx error log');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

function ctl(args, input) {
  return execFileSync(server.certgatectl, ['--store', server.store, ...args],
    { input: input || '', encoding: 'utf8' });
}

function url(p) { return server.origin + p; }

function userLanguage(user) {
  return JSON.parse(ctl(['--json', 'user', 'show', user])).language;
}

async function context(lang, opts) {
  return lib.newContext(browser, server, { lang, ...(opts || {}) });
}

// ④ → ⑤ in the page's language; the password by the software keyboard.
async function authenticate(page, user, button) {
  await page.goto(url('/certgate/issue'));
  await page.fill('#user_id', user);
  await lib.typeWithKeyboard(page, 'password', PASSWORD);
  const mailedAfter = Date.now() - 1000;
  await page.getByRole('button', { name: button, exact: true }).click();
  await page.waitForURL(/\/certgate\/issue\/code$/);
  const code = await lib.authCode(server, user, mailedAfter);
  await page.fill('#code', code);
  await page.getByRole('button', { name: button, exact: true }).click();
  await page.waitForURL(/\/certgate\/issue\/confirm/);
}

// ⑥'s button pressed; the .p12 that downloads by itself, saved.
async function issue(page, button, file) {
  const download = page.waitForEvent('download', { timeout: 30000 });
  await page.getByRole('button', { name: button, exact: true }).click();
  const dl = await download;
  const p12 = path.join(tmp, file);
  await dl.saveAs(p12);
  await page.waitForLoadState();
  return p12;
}

async function login(lang, user, p12) {
  const ctx = await context(lang, {
    clientCertificates: [{ origin: server.origin, pfxPath: p12, passphrase: PASSWORD }],
  });
  const page = await ctx.newPage();
  await page.goto(url('/certgate/'));
  await page.fill('#user_id', user);
  await lib.typeWithKeyboard(page, 'password', PASSWORD);
  await page.getByRole('button', { name: lang === 'en' ? 'Log in' : 'ログイン', exact: true }).click();
  await page.waitForLoadState();
  return { ctx, page };
}

test('English chosen once: every following page, POST answer and mail of that user', async () => {
  const ctx = await context('ja');  // a Japanese browser: only the switch makes it English
  const page = await ctx.newPage();
  await page.goto(url('/certgate/'));
  assert.equal(await page.getAttribute('html', 'lang'), 'ja');
  await page.getByRole('link', { name: 'English' }).click();
  await page.waitForLoadState();
  assert.equal(await page.getAttribute('html', 'lang'), 'en', 'the switch');
  const cookie = (await ctx.cookies(server.origin)).find((c) => c.name === '__Host-certgate_lang');
  assert.ok(cookie && cookie.value === 'en' && cookie.secure && cookie.sameSite === 'Lax', 'the language cookie');

  // Links and buttons without ?lang=: still English.
  await page.getByRole('button', { name: 'Issue a certificate', exact: true }).click();
  await page.waitForURL(/\/certgate\/issue\??$/);
  assert.equal(await page.getAttribute('html', 'lang'), 'en', '④ in English');
  // A POST answer: a wrong password.
  await page.fill('#user_id', 'languser01');
  await lib.typeWithKeyboard(page, 'password', 'Wr#0ngpass');
  await page.getByRole('button', { name: 'Authenticate', exact: true }).click();
  await page.waitForLoadState();
  assert.equal(await page.getAttribute('html', 'lang'), 'en', 'the POST answer in English');
  assert.match(await page.locator('.cg-message').textContent(), /not correct/);

  await authenticate(page, 'languser01', 'Authenticate');
  assert.equal(await page.getAttribute('html', 'lang'), 'en', '⑥ in English');
  const codeMail = lib.mailsTo(server, 'languser01').pop();
  assert.match(codeMail.subject, /authentication code/i, 'the code mail in English');
  assert.equal(userLanguage('languser01'), 'en', 'the user\'s own language is now en');
  const p12 = await issue(page, 'Issue', 'languser01.p12');
  assert.equal(await page.getAttribute('html', 'lang'), 'en', '⑧ in English');
  assert.ok(fs.statSync(p12).size > 500);

  // The lock mail, made by tries from another (Japanese) browser: English.
  const other = await context('ja');
  const req = other.request;
  for (let i = 0; i < 6; i++) {
    const get = await req.get(url('/certgate/'), { headers: { Accept: 'application/json' } });
    const token = (await get.json()).csrf_token;
    const r = await req.post(url('/certgate/issue'), {
      headers: { Accept: 'application/json' },
      form: { csrf_token: token, user_id: 'languser01', password: 'Wr#0ngpass' },
    });
    assert.match((await r.json()).message, /[ぁ-ん]/, 'that browser reads Japanese');
  }
  let lock;
  for (let i = 0; i < 150 && !lock; i++) {
    lock = lib.mailsTo(server, 'languser01').find((m) => /locked/.test(m.subject));
    if (!lock) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(lock, 'a lock mail');
  assert.match(lock.body, /Locked until: /, 'in English, the user\'s language');
  assert.doesNotMatch(lock.body, /ロック|様/, 'not the Japanese mail');
  ctl(['user', 'unlock', 'languser01']);
  await other.close();
  await ctx.close();
});

test('a full-width user ID and a 13-character keyboard password: the rule messages', async () => {
  for (const [lang, button, fullWidth, tooLong] of [
    ['ja', '認証', /全角文字は使用できません/, /文字数が多すぎます.*12文字以内.*13文字/],
    ['en', 'Authenticate', /full-width/i, /too long|too many/i],
  ]) {
    const ctx = await context(lang);
    const page = await ctx.newPage();
    await page.goto(url(`/certgate/issue?lang=${lang}`));
    await page.fill('#user_id', 'ｔａｎａｋａ０１');
    await lib.typeWithKeyboard(page, 'password', PASSWORD);
    await page.getByRole('button', { name: button, exact: true }).click();
    await page.waitForLoadState();
    assert.match(await page.locator('.cg-message').textContent(), fullWidth, `[${lang}] full-width ID`);

    const before = JSON.parse(ctl(['--json', 'user', 'show', 'ruleuser01'])).failure_streak;
    await page.fill('#user_id', 'ruleuser01');
    await lib.typeWithKeyboard(page, 'password', 'Ab#45678901x');  // 12
    await lib.typeWithKeyboard(page, 'password', 'y');              // 13
    assert.equal((await page.inputValue('#password')).length, 13, 'the keyboard took the 13th character');
    await page.getByRole('button', { name: button, exact: true }).click();
    await page.waitForLoadState();
    assert.match(await page.locator('.cg-message').textContent(), tooLong, `[${lang}] too long`);
    const after = JSON.parse(ctl(['--json', 'user', 'show', 'ruleuser01'])).failure_streak;
    assert.equal(after, before, 'the failure streak is unchanged');
    await ctx.close();
  }
});

test('R20 PC change from a second browser profile: the old certificate refused, the new one logs in', async () => {
  // The old PC: issue, log in, reach the app.
  const oldPc = await context('ja');
  const page = await oldPc.newPage();
  await authenticate(page, 'pcchange01', '認証');
  const oldP12 = await issue(page, '発行', 'old.p12');
  const oldLogin = await login('ja', 'pcchange01', oldP12);
  await oldLogin.page.goto(url('/app/'));
  assert.equal((await oldLogin.page.locator('#user').textContent()).trim(), 'pcchange01');

  // The new PC, another profile: ④ ⑤ pass, ⑥ offers 電子証明書を失効して再発行.
  const newPc = await context('ja');
  const p2 = await newPc.newPage();
  await authenticate(p2, 'pcchange01', '認証');
  assert.match(await p2.locator('.cg-replace').textContent(), /有効な電子証明書をお持ちです/);
  const newP12 = await issue(p2, '電子証明書を失効して再発行', 'new.p12');
  assert.match(await p2.locator('.cg-steps [aria-current="step"]').textContent(), /⑧/);

  // The master of the organisation hears of it.
  let told = false;
  for (let i = 0; i < 150 && !told; i++) {
    told = lib.mailsTo(server, 'langmast01').some((m) => /pcchange01/.test(m.body) && /失効/.test(m.body));
    if (!told) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(told, 'the master is mailed');

  // The old PC's open session is refused within the feed's interval.
  let status = 200;
  for (let i = 0; i < 100 && status === 200; i++) {
    status = (await oldLogin.page.goto(url('/app/'))).status();
    if (status === 200) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(status, 401, 'the old certificate is refused on the protected path');
  assert.match(await oldLogin.page.locator('main').textContent(), /失効/);

  const fresh = await login('ja', 'pcchange01', newP12);
  await fresh.page.goto(url('/app/'));
  assert.equal((await fresh.page.locator('#user').textContent()).trim(), 'pcchange01', 'the new one logs in');
  for (const c of [oldPc, newPc, oldLogin.ctx, fresh.ctx]) await c.close();
});
