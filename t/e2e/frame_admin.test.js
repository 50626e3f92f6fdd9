// Issue 16 part A in Chromium: a login lands in the business application
// (return=) with certgate's frame, whose ログアウト ends the session; the
// master's 一般ユーザー管理 from the frame: add, パスワード初期化 (with its
// confirmation), ロック・閉塞解除, 利用停止 (confirmation, message, 失効).
// Users and certificates are made with certgatectl and openssl (the
// issuance walk itself is portal.test.js's).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const lib = require('./lib');

let server;
let browser;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'certgate-e2e-frame-'));
const ORG = 'FRAMEORG';
const PASSWORD = 'Fr#2026pass';
const MASTER = 'framemaster1';
const GENERALS = ['framegen01', 'framegen02', 'framegen03'];
const p12 = {};

const ctl = (args, input) => lib.certgatectl(server, args, input);

before(async () => {
  server = await lib.startServers();
  browser = await lib.launchBrowser();
  ctl(['org', 'add', ORG, '--name', 'Frame Org']);
  ctl(['user', 'add-master', ORG, MASTER, '--mail', `${MASTER}@example.test`, '--name', 'Master Ichiro', '--password-stdin'], `${PASSWORD}\n`);
  for (const [i, user] of GENERALS.entries()) {
    ctl(['user', 'add-general', ORG, user, '--mail', `${user}@example.test`, '--name', `労金 ${['花子', '次郎', '三郎'][i]}`,
      '--password-stdin'], `${PASSWORD}\n`);
  }
  for (const user of [MASTER, ...GENERALS]) p12[user] = lib.clientCertificate(server, tmp, ORG, user, PASSWORD);
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    const bad = await server.stop();
    assert.deepEqual(bad, [], 'no [alert], [emerg] or [crit] in the nginx error log');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

const url = (p) => server.origin + p;

async function asUser(user, lang = 'ja') {
  const ctx = await lib.newContext(browser, server, {
    lang, clientCertificates: [{ origin: server.origin, pfxPath: p12[user], passphrase: PASSWORD }],
  });
  return { ctx, page: await ctx.newPage() };
}

async function clean(ctx, page, what) {
  assert.deepEqual(await lib.axeViolations(page), [], `${what}: axe finds no serious or critical violation`);
  assert.deepEqual(ctx.problems, [], `${what}: no console error or CSP violation`);
}

async function logIn(page, user) {
  await page.fill('#user_id', user);
  await page.fill('#password', PASSWORD);
  await page.getByRole('button', { name: 'ログイン', exact: true }).click();
  await page.waitForLoadState();
}

test('login lands in the application with the frame; ログアウト ends the session', async () => {
  const { ctx, page } = await asUser('framegen01');
  await page.goto(url('/app/'));
  await page.waitForURL(/\/certgate\/\?return=%2Fapp%2F$/);
  assert.equal(await page.locator('input[name="return"]').getAttribute('value'), '/app/');
  await logIn(page, 'framegen01');
  await page.waitForURL(/\/app\/$/);
  assert.equal((await page.locator('#user').textContent()).trim(), 'framegen01', 'landed in the application');

  // certgate's own pages show the frame.
  await page.goto(url('/certgate/issue'));
  const frame = page.locator('nav.cg-frame');
  assert.equal((await frame.locator('.cg-frame-user').textContent()).trim(), 'framegen01');
  assert.equal((await frame.locator('.cg-frame-org').textContent()).trim(), ORG);
  assert.equal(await frame.getByRole('link', { name: '一般ユーザー管理' }).count(), 0, 'a general user: no admin link');
  await clean(ctx, page, '④ with the frame');
  await frame.getByRole('link', { name: '業務画面へ' }).click();
  await page.waitForURL(/\/app\/$/);

  // The application's copy of the frame (its variables) logs out.
  await page.getByRole('button', { name: 'ログアウト', exact: true }).click();
  await page.waitForURL(/\/certgate\/\?logged_out=1$/);
  assert.match(await page.locator('.cg-notice').textContent(), /ログアウトしました。/);
  assert.equal(await page.locator('nav.cg-frame').count(), 0, 'no frame after logout');
  await page.goto(url('/app/'));
  await page.waitForURL(/\/certgate\/\?return=/);
  await ctx.close();
});

test('the master: 一般ユーザー管理 from the frame; add, reset, unlock, disable', async () => {
  ctl(['user', 'block', 'framegen02']);
  const { ctx, page } = await asUser(MASTER);
  await page.goto(url('/certgate/admin/users'));
  await page.waitForURL(/return=%2Fcertgate%2Fadmin%2Fusers$/);
  await logIn(page, MASTER);
  await page.waitForURL(/\/certgate\/admin\/users$/);
  await page.goto(url('/certgate/'));
  await page.locator('nav.cg-frame').getByRole('link', { name: '一般ユーザー管理' }).click();
  await page.waitForURL(/\/certgate\/admin\/users$/);
  await clean(ctx, page, '一般ユーザー管理');

  // The table stays inside the card, however long a serial is.
  const fits = await page.evaluate(() => {
    const main = document.querySelector('main').getBoundingClientRect();
    const table = document.querySelector('table.cg-users').getBoundingClientRect();
    return table.right <= main.right + 1;
  });
  assert.ok(fits, 'the table does not run past the card');
  const row = (user) => page.locator('tr', { has: page.locator(`th:text-is("${user}")`) });
  assert.match(await row('framegen01').textContent(), /有効/);
  assert.match(await row('framegen02').textContent(), /閉塞/);
  assert.doesNotMatch(await row('framegen02').textContent(), /ロック解除日時/);

  // Add.
  await page.fill('#user_id', 'frameadd01');
  await page.fill('#name', 'Added Shiro');
  await page.fill('#mail', 'frameadd01@example.test');
  await page.getByRole('button', { name: '登録', exact: true }).click();
  await page.waitForLoadState();
  assert.match(await page.locator('main').textContent(), /frameadd01/);
  assert.equal(await page.locator('.cg-secret').count(), 1, 'its initial password');
  await page.getByRole('link', { name: '一般ユーザー管理へ戻る' }).click();
  assert.match(await row('frameadd01').textContent(), /未発行/);

  // Unlock (the block).
  await row('framegen02').getByRole('button', { name: 'ロック・閉塞解除' }).click();
  await page.waitForURL(/done=unlock&user=framegen02$/);
  assert.match(await page.locator('.cg-notice').textContent(), /framegen02 のロック・閉塞を解除しました/);
  assert.match(await row('framegen02').textContent(), /利用可能/);

  // Reset asks first; キャンセル changes nothing.
  await row('framegen03').getByRole('button', { name: 'パスワード初期化' }).click();
  await page.waitForLoadState();
  assert.equal((await page.locator('h1').textContent()).trim(), 'パスワード初期化の確認');
  await clean(ctx, page, 'パスワード初期化の確認');
  await page.getByRole('link', { name: 'キャンセル' }).click();
  await page.waitForURL(/\/certgate\/admin\/users$/);
  assert.match(await row('framegen03').textContent(), /利用可能/);
  await row('framegen03').getByRole('button', { name: 'パスワード初期化' }).click();
  await page.locator('main').getByRole('button', { name: 'パスワード初期化' }).click();
  await page.waitForLoadState();
  assert.match(await page.locator('main').textContent(), /パスワードを初期化しました/);
  assert.equal(await page.locator('.cg-secret').count(), 1, 'the new initial password');

  // Disable asks first, then says so; the certificate is 失効.
  await page.goto(url('/certgate/admin/users'));
  await row('framegen01').getByRole('button', { name: '利用停止' }).click();
  await page.waitForLoadState();
  assert.equal((await page.locator('h1').textContent()).trim(), '利用停止の確認');
  await page.locator('main').getByRole('button', { name: '利用停止' }).click();
  await page.waitForURL(/done=disable&user=framegen01$/);
  assert.match(await page.locator('.cg-notice').textContent(), /framegen01 を利用停止にしました/);
  const disabled = await row('framegen01').textContent();
  assert.match(disabled, /利用停止/);
  assert.match(disabled, /失効/);
  assert.doesNotMatch(disabled, /未発行/);
  await clean(ctx, page, '一般ユーザー管理 after 利用停止');
  await ctx.close();
});
