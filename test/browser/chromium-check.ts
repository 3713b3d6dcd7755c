import { CHROMIUM, hasChromium } from './chromium.js';

/** Once per run: a machine without Chromium skips the browser tests, and says so in one line. */
export default function setup() {
  if (!hasChromium) console.log(`browser tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
}
