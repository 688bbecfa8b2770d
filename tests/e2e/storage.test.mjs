// Storage faults: one trainer per origin (two tabs training at once would overwrite each other's
// checkpoint), and a checkpoint database whose connection the browser closed is opened again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPage, waitUntilReady, assertClean, BASE_URL } from './browser.mjs';

const savedStep = (page) => page.evaluate(() => Number(document.querySelector('#checkpoint-status').dataset.step ?? 0));

test('a second tab is told why it cannot train, and trains once the first tab is closed', async () => {
  const browser = await openPage();
  try {
    const { page: first, context } = browser;
    await first.click('#run');
    await first.waitForFunction(() => document.body.dataset.training === 'running');

    const second = await context.newPage();
    await second.goto(BASE_URL);
    await waitUntilReady(second);
    await second.click('#run');
    await second.waitForSelector('#trainer-lock', { state: 'visible' });
    const refusal = await second.textContent('#trainer-lock');
    assert.match(refusal, /Another tab of this page is training/);
    assert.match(refusal, /overwrite each other’s checkpoints/);
    // Its network did not start.
    await second.waitForTimeout(500);
    assert.equal(await second.evaluate(() => window.lenetPage.trainingState().running), false);
    assert.notEqual(await second.evaluate(() => document.body.dataset.training), 'running');

    await first.close();
    await second.waitForFunction(() => document.querySelector('#trainer-lock').textContent.includes('can train now'));
    await second.click('#run');
    await second.waitForFunction(() => document.body.dataset.training === 'running');
    await second.waitForFunction(() => window.lenetPage.trainingState().step > 3, null, { timeout: 60_000 });
    assert.ok(await second.isHidden('#trainer-lock') || (await second.textContent('#trainer-lock')).includes('can train now'));
    assertClean(browser);
  } finally {
    await browser.close();
  }
});

test('a checkpoint database closed under the worker is opened again, and checkpoints go on', async () => {
  const browser = await openPage({}, '?test-hooks');
  try {
    const { page } = browser;
    // Training that stops is checkpointed at once.
    await page.evaluate(() => window.lenetPage.trainSteps(4));
    await page.waitForFunction(() => Number(document.querySelector('#checkpoint-status').dataset.step) === 4);
    assert.equal(await page.evaluate(() => window.lenetPage.closeCheckpointDb()), true);
    await page.evaluate(() => window.lenetPage.trainSteps(3));
    await page.waitForFunction(() => Number(document.querySelector('#checkpoint-status').dataset.step) === 7, null, { timeout: 30_000 });
    assert.equal(await savedStep(page), 7);
    assert.doesNotMatch(await page.textContent('#checkpoint-status'), /off|unavailable/i);
    // The checkpoint written after the reopen is the one a reload offers.
    await page.reload();
    await waitUntilReady(page);
    await page.waitForSelector('#checkpoint-offer', { state: 'visible' });
    assert.equal(await page.evaluate(() => Number(document.querySelector('#checkpoint-offer').dataset.step)), 7);
    assertClean(browser);
  } finally {
    await browser.close();
  }
});
