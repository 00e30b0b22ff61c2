import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's Chromium (the one `.ci/run` and `npm run test:setup` install), headless, with the
 * background traffic it would try to make on an offline machine turned off. The editor tests and
 * `bench/editor.ts` share it, so a benchmark measures the browser the tests run.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
