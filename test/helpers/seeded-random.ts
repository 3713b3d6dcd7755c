/** Random choices a failing run can replay: the seed comes from an environment variable, or is fresh and shown. */
export function seedFrom(name: string): number {
  const text = process.env[name];
  if (text === undefined || text === '') return Date.now() % 2 ** 31;
  const seed = Number(text);
  if (!Number.isSafeInteger(seed)) throw new Error(`${name} must be an integer, not ${JSON.stringify(text)}`);
  return seed;
}

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    between: (low: number, high: number) => low + next() * (high - low),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
  };
}
