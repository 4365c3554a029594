// Drives the local runtime's web page in headless Chromium: connect, an echo
// and a delay request (progress bar, result), an error. Run by
// test/e2e/browser_test.go with STREAMER_PAGE_URL (token included),
// STREAMER_SCREENSHOT and STREAMER_USER_DATA_DIR set.
import { chromium } from "playwright-core";
import assert from "node:assert/strict";

const url = process.env.STREAMER_PAGE_URL;
const screenshot = process.env.STREAMER_SCREENSHOT;
const userDataDir = process.env.STREAMER_USER_DATA_DIR;
const executablePath = process.env.STREAMER_CHROMIUM || "/usr/bin/chromium";
assert.ok(url && screenshot && userDataDir, "STREAMER_PAGE_URL, STREAMER_SCREENSHOT and STREAMER_USER_DATA_DIR are required");

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const timeout = 30_000;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(url);
  assert.notEqual(await page.inputValue("#token"), "", "token prefilled from the URL");

  await page.click("#connect");
  await page.waitForSelector("#state.open", { timeout });

  const newest = "#requests .request:first-child";
  const send = async (action, payload) => {
    await page.selectOption("#action", action);
    await page.fill("#payload", JSON.stringify(payload));
    const before = await page.locator("#requests .request").count();
    await page.click("#send");
    await page.waitForFunction((n) => document.querySelectorAll("#requests .request").length === n + 1, before, { timeout });
    return page.getAttribute(newest, "data-request-id");
  };
  const card = (id) => `#requests .request[data-request-id="${id}"]`;

  // Sync echo: the result appears at once.
  const echo = await send("echo", { message: "hello from chromium" });
  await page.waitForSelector(`${card(echo)}.completed`, { timeout });
  assert.match(await page.textContent(`${card(echo)} .result`), /hello from chromium/);

  // Async delay: the bar moves through intermediate values to 100%.
  const delay = await send("delay", { seconds: 2, steps: 5 });
  await page.waitForFunction((sel) => {
    const v = Number(document.querySelector(sel)?.getAttribute("aria-valuenow"));
    return v > 0 && v < 100;
  }, `${card(delay)} .bar`, { timeout, polling: "raf" });
  await page.waitForSelector(`${card(delay)}.completed`, { timeout });
  assert.equal(await page.getAttribute(`${card(delay)} .bar`, "aria-valuenow"), "100");
  assert.match(await page.textContent(`${card(delay)} .result`), /"steps": 5/);
  assert.match(await page.textContent(`${card(delay)} .badge`), /completed/);

  // An error is shown on its card with its code.
  const missing = await send("status", { request_id: "no-such-request" });
  await page.waitForSelector(`${card(missing)} .badge.error`, { timeout });
  assert.match(await page.textContent(`${card(missing)} .badge`), /NOT_FOUND/);

  await page.screenshot({ path: screenshot, fullPage: true });
  assert.deepEqual(errors, [], "no script errors on the page");
  console.log("page test passed");
} finally {
  await context.close();
}
