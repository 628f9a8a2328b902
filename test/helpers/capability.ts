import { type Capability, firstMissing, isRequired } from '../../harness/capabilities.js';

/**
 * For `describe.skipIf(...)`: true when a capability is missing and may be skipped. Prints the reason.
 * Under FIELDLAB_REQUIRE=all (CI) a missing capability throws instead, so the run fails.
 */
export function missing(...caps: Capability[]): boolean {
  const miss = firstMissing(caps);
  if (!miss) return false;
  if (isRequired(miss.capability)) {
    throw new Error(`required capability ${miss.capability} is missing: ${miss.reason}`);
  }
  console.warn(`[skip] needs ${miss.capability}: ${miss.reason}`);
  return true;
}
