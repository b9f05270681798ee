import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_ARGS, chromiumPath } from '../support/chromium';
import { startExampleOnFreshDatabase, type RunningExample } from '../support/example-app';

describe('demo page in headless Chromium', () => {
  let run: RunningExample;
  let browser: Browser;

  beforeAll(async () => {
    // The page imports the SDK as an ES module from dist/client-esm: build it when missing.
    const root = join(__dirname, '..', '..');
    if (!existsSync(join(root, 'dist', 'client-esm', 'index.js'))) {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.client-esm.json'], {
        cwd: root,
        stdio: 'inherit',
      });
    }
    const executablePath = chromiumPath(); // before anything starts: fails the suite if missing
    run = await startExampleOnFreshDatabase({ TASK_DELAY_MS: '300' });
    browser = await chromium.launch({
      executablePath,
      args: CHROMIUM_ARGS,
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await run?.close();
  });

  async function openDemo(): Promise<Page> {
    const page = await browser.newPage();
    page.on('pageerror', (error) => {
      throw error;
    });
    await page.goto(`${run.url}/`);
    await page.waitForSelector('#status:text("following #general")');
    return page;
  }

  it('shows a message posted in one page in the other within 1 s', async () => {
    const [alice, bob] = [await openDemo(), await openDemo()];
    await alice.fill('#message-input', 'hello from alice');
    const sentAt = Date.now();
    await alice.click('#send');
    await bob.waitForSelector('#messages li:has-text("hello from alice")', { timeout: 1000 });
    expect(Date.now() - sentAt).toBeLessThan(1000);
    await alice.close();
    await bob.close();
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
