import { randomInt } from 'node:crypto';
import { z } from 'zod';

/**
 * Fault injection for the card-network sandbox. Tests describe how the network misbehaves
 * (refuses, fails, hangs, commits and then loses the answer, answers late) and the sandbox
 * does exactly that, repeatably: probabilities are drawn from a seeded generator.
 * Rules live in memory, per sandbox app: they are a test's arrangement, not data.
 */

export const PHASES = ['tokenize', 'authorize', 'increment', 'capture', 'void', 'refund'] as const;
export type Phase = (typeof PHASES)[number];

export const FAULT_KINDS = ['decline', 'error', 'timeout_before_commit', 'drop_after_commit', 'slow'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

const DEFAULT_DELAY_MS = 5000;
const MAX_DELAY_MS = 600_000;
const MAX_HOLD_VALIDITY_MS = 3650 * 86_400_000;

const ruleSchema = z.strictObject({
  phase: z.enum(PHASES),
  fault: z.enum(FAULT_KINDS),
  probability: z.number().min(0).max(1).default(1),
  times: z.number().int().min(1).optional(),
  delayMs: z.number().int().min(0).max(MAX_DELAY_MS).default(DEFAULT_DELAY_MS),
});

/** The body of `PUT /v1/faults`. Strict, so a misspelt field is an error rather than a fault that never fires. */
export const faultConfigSchema = z.strictObject({
  rules: z.array(ruleSchema).max(100).default([]),
  seed: z.number().int().optional(),
  holdValidityMs: z.number().int().positive().max(MAX_HOLD_VALIDITY_MS).optional(),
});
export type FaultConfig = z.output<typeof faultConfigSchema>;

/** What a call drew: the fault to act out and, for the waiting kinds, how long to wait. */
export interface DrawnFault {
  fault: FaultKind;
  delayMs: number;
}

interface ActiveRule {
  phase: Phase;
  fault: FaultKind;
  probability: number;
  times: number | null;
  delayMs: number;
  used: number;
}

export interface FaultInjector {
  /** Counts a call of the phase as received, whatever then becomes of it. */
  arrive(phase: Phase): void;
  /** The fault this call suffers, if any; uses up one of the rule's `times`. */
  draw(phase: Phase): DrawnFault | null;
  /** Replaces rules, seed and hold validity (left out means back to the default) and zeroes the counters. */
  configure(config: FaultConfig): void;
  /** No rules, default hold validity, counters zeroed. */
  reset(): void;
  /** How long a hold placed now stays open. */
  holdValidityMs(): number;
  view(): FaultView;
}

export interface FaultView {
  rules: ActiveRule[];
  seed: number;
  holdValidityMs: number;
  calls: Record<Phase, number>;
}

export function createFaultInjector(defaults: { holdValidityMs: number }): FaultInjector {
  let rules: ActiveRule[] = [];
  let seed = freshSeed();
  let random = mulberry32(seed);
  let holdValidityMs = defaults.holdValidityMs;
  let calls = zeroCalls();

  const configure = (config: FaultConfig) => {
    rules = config.rules.map((rule) => ({
      phase: rule.phase,
      fault: rule.fault,
      probability: rule.probability,
      times: rule.times ?? null,
      delayMs: rule.delayMs,
      used: 0,
    }));
    // Unsigned 32 bits is the generator's state; any integer the caller picks maps onto it.
    seed = config.seed === undefined ? freshSeed() : Number(BigInt.asUintN(32, BigInt(config.seed)));
    random = mulberry32(seed);
    holdValidityMs = config.holdValidityMs ?? defaults.holdValidityMs;
    calls = zeroCalls();
  };

  return {
    arrive(phase) {
      calls[phase] += 1;
    },

    draw(phase) {
      for (const rule of rules) {
        if (rule.phase !== phase) continue;
        if (rule.times !== null && rule.used >= rule.times) continue;
        // Certain and impossible rules draw nothing, so adding one does not shift the
        // sequence the other rules see.
        const hit = rule.probability >= 1 || (rule.probability > 0 && random() < rule.probability);
        if (!hit) continue;
        rule.used += 1;
        return { fault: rule.fault, delayMs: rule.delayMs };
      }
      return null;
    },

    configure,
    reset: () => configure({ rules: [] }),

    holdValidityMs: () => holdValidityMs,

    view() {
      return { rules: rules.map((rule) => ({ ...rule })), seed, holdValidityMs, calls: { ...calls } };
    },
  };
}

function zeroCalls(): Record<Phase, number> {
  return { tokenize: 0, authorize: 0, increment: 0, capture: 0, void: 0, refund: 0 };
}

/** Reported in GET /v1/faults, so a run without a chosen seed can still be replayed. */
function freshSeed(): number {
  return randomInt(0, 2 ** 32);
}

/** A small, well-mixed 32-bit generator: the same seed gives the same draws on every platform. */
function mulberry32(state: number): () => number {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
