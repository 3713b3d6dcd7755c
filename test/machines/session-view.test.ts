import { describe, expect, it } from 'vitest';
import { stateNameOf } from '../../machines/session/index.js';
import { viewOf } from '../../src/sessions/session-view.js';
import { START, startSession } from './session-harness.js';

describe('the session view', () => {
  it('counts no paused time in `accrued` after a grace extension resumes the session', async () => {
    const session = startSession({ input: { graceMs: 60_000 } });
    await session.settle();
    // 5.00 at 0.01 a second: the limit at 500 s; interrupted for 20 s; extended to 6.00.
    await session.advance(500_000);
    await session.advance(20_000);
    session.actor.send({ type: 'EXTEND', at: session.clock.now(), maxChargeMicros: '6000000' });
    await session.settle();
    expect(stateNameOf(session.actor.getSnapshot())).toBe('active');
    await session.advance(30_000);
    const { context } = session.actor.getSnapshot();
    // 530 s billed (550 s since the start, less 20 s paused).
    expect(viewOf('active', context, session.clock.now()).accrued).toBe('5.30');
    expect(session.clock.now()).toBe(START + 550_000);
  });
});
