import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, chromiumPath } from '../support/chromium';
import { OwnedPostgres } from '../support/owned-postgres';
import { ensureClientEsmBuilt } from '../support/example-app';
import { waitFor } from '../support/wait-for';
import { startExampleApp, type ExampleApp } from '../../example/example-app';
import { HeldRequests } from '../../src/http-polling/held-requests.service';

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('demo page in headless Chromium', () => {
  let run: ExampleApp;
  let postgres: OwnedPostgres;
  let browser: Browser;

  beforeAll(async () => {
    const executablePath = chromiumPath(); // before anything starts: fails the suite if missing
    ensureClientEsmBuilt();
    // A PostgreSQL of its own, not the shared one: there, other suites' CREATE/DROP DATABASE hold
    // the cluster-wide commit horizon for up to a second, and every change waits behind it, which
    // the latency and 1 s assertions would see.
    const owned = await OwnedPostgres.start();
    if ('skipped' in owned)
      throw new Error(`the demo page test needs its own server: ${owned.skipped}`);
    postgres = owned;
    run = await startExampleApp(
      {
        DATABASE_URL: await postgres.createDatabase('demo'),
        MIGRATE_ON_START: '1',
        PORT: '0',
        HOST: '127.0.0.1',
        TASK_DELAY_MS: '300',
      },
      { logger: false },
    );
    browser = await chromium.launch({
      executablePath,
      args: CHROMIUM_ARGS,
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    run?.app.getHttpServer().closeAllConnections();
    await run?.close();
    await postgres?.destroy();
  });

  const pageErrors: Error[] = [];
  const watchErrors = (page: Page) => page.on('pageerror', (error) => pageErrors.push(error));

  async function openDemo(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1200, height: 860 } });
    watchErrors(page);
    await page.goto(`${run.url}/`);
    await page.waitForSelector('#status:text("following #general")');
    return page;
  }

  /** The channel's head, read from its list endpoint as any client of the API would. */
  async function headCursor(channel: string): Promise<string> {
    const res = await fetch(`${run.url}/channels/${channel}/messages?limit=1`, {
      headers: { Authorization: 'Bearer key-1' },
    });
    expect(res.status).toBe(200);
    return res.headers.get('poll-cursor')!;
  }

  /** A row of the request log, picked by what its cells say. */
  function logRow(page: Page, cells: Record<string, string | RegExp>) {
    let rows = page.locator('#log tbody tr');
    for (const [cell, text] of Object.entries(cells)) {
      const exact = typeof text === 'string' ? new RegExp(`^${escapeRegExp(text)}$`) : text;
      rows = rows.filter({ has: page.locator(`td.${cell}`, { hasText: exact }) });
    }
    return rows.first();
  }

  /** Each transport as the page names it, and what its answer to one new message looks like. */
  const transports = [
    { value: 'long', label: 'long poll', status: '200', wake: 'change', held: true },
    { value: 'sse', label: 'SSE', status: 'event', wake: 'change (pushed)', held: true },
    { value: 'short', label: 'short poll', status: '200', wake: 'immediate', held: false },
    { value: 'batch', label: 'batch', status: '200', wake: 'change', held: true },
  ];

  it("follows one channel in two windows over each transport, logging every request and showing each message's latency", async () => {
    const first = await openDemo();
    const [second] = await Promise.all([
      first.waitForEvent('popup'),
      first.click('text=Open this channel in a second window'),
    ]);
    watchErrors(second);
    await second.waitForSelector('#status:text("following #general")');
    const windows = [first, second];
    const held = run.app.get(HeldRequests);

    for (const transport of transports) {
      for (const page of windows) {
        await page.getByLabel(transport.label, { exact: true }).check();
        expect(await page.textContent('#channel-transport')).toBe(transport.label);
        await logRow(page, { transport: transport.label }).waitFor();
      }
      // Post once both windows wait on the server (short polls hold nothing), so that a held
      // request is woken by this message rather than finding it there.
      if (transport.held) await waitFor(() => held.size === 2);
      const text = `hello over ${transport.label}`;
      await first.fill('#message-input', text);
      const sentAt = Date.now();
      await first.click('#send');
      for (const page of windows) {
        const message = page.locator('#messages li', { hasText: text });
        // Short polls ask every 1–2 s; the others answer at once.
        await message.waitFor({ timeout: transport.held ? 1000 : 5000 });
        if (transport.held) expect(Date.now() - sentAt).toBeLessThan(1000);
        await message.locator('.latency', { hasText: /^\d+ ms$/ }).waitFor({ timeout: 1000 });
      }
      const cursor = await headCursor('general');
      for (const page of windows) {
        const answer = logRow(page, {
          transport: transport.label,
          status: transport.status,
          wake: transport.wake,
          cursor,
        });
        await answer.waitFor({ timeout: 1000 });
        if (transport.value !== 'sse')
          expect(await answer.locator('td.held').textContent()).toMatch(/^\d+ ms$/);
      }
    }
    // The stream is logged too, when it opened.
    await logRow(first, { transport: 'SSE', status: '200', wake: 'stream open' }).waitFor();

    // DEMO_SCREENSHOT=docs/demo.png writes the screenshot of the README.
    const screenshot = process.env.DEMO_SCREENSHOT;
    if (screenshot) {
      await first.click('#start-task');
      await first.waitForSelector('#tasks li[data-status="done"]');
      await first.screenshot({ path: screenshot });
    }
    expect(pageErrors).toEqual([]);
    await second.close();
    await first.close();
  });

  it('shows a started task as done without a reload', async () => {
    const page = await openDemo();
    await page.fill('#task-input', 'reverse me');
    await page.click('#start-task');
    const done = await page.waitForSelector('#tasks li[data-status="done"]', { timeout: 5000 });
    expect(await done.textContent()).toContain('em esrever');
    await page.close();
  });
});
