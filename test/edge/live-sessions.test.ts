import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { LiveSessions, type Ended } from '../../src/edge/live-sessions.js';
import type { StoredEvent } from '../../src/events/event-store.js';
import { createLogger } from '../../src/logger.js';

const SESSION = '11111111-1111-4111-8111-111111111111';
const common = { sessionId: SESSION, accountId: '22222222-2222-4222-8222-222222222222', serviceId: '33333333-3333-4333-8333-333333333333', serverId: '44444444-4444-4444-8444-444444444444' };
let position = 0n;
const event = (type: string, payload: Record<string, unknown>): StoredEvent => ({ position: ++position, tx: '1', stream: `session:${SESSION}`, type, at: new Date(), payload: { ...common, ...payload } });
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

function table() {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const live = new LiveSessions({ clock, log: createLogger('silent') });
  const cuts: Ended[] = [];
  const watch = () => live.get(SESSION)!.connections.add({ cut: (ended) => cuts.push(ended), drop: () => {} });
  return { clock, live, cuts, watch };
}

describe('the edge’s table of live sessions', () => {
  it('cuts at the cutoff instant by itself, with the cutoff’s reason', async () => {
    const { clock, live, cuts, watch } = table();
    const cutoffAt = clock.now() + 60_000;
    live.apply([event('session.activated', { startedAt: clock.now(), cutoffAt, cutoffReason: 'charge_limit' })]);
    watch();
    clock.advance(59_999);
    await tick();
    expect(cuts).toEqual([]);
    clock.advance(1);
    await tick();
    expect(cuts).toEqual([{ reason: 'charge_limit', at: cutoffAt }]);
    expect(live.get(SESSION)!.ended).toEqual({ reason: 'charge_limit', at: cutoffAt });
    expect(live.get(SESSION)!.traffic.total.connectionsCut).toBe(1);
    live.close();
  });

  it('moves the cutoff on an extension without cutting, and lets a session extended over its limit through again', async () => {
    const { clock, live, cuts, watch } = table();
    live.apply([event('session.activated', { startedAt: clock.now(), cutoffAt: clock.now() + 10_000, cutoffReason: 'charge_limit' })]);
    watch();
    live.apply([event('session.extended', { cutoffAt: clock.now() + 30_000, cutoffReason: 'charge_limit', resumed: false })]);
    clock.advance(20_000);
    await tick();
    expect(cuts).toEqual([]);
    clock.advance(10_000);
    await tick();
    expect(cuts).toHaveLength(1);
    live.apply([event('session.extended', { cutoffAt: clock.now() + 5_000, cutoffReason: 'time_limit', resumed: true })]);
    expect(live.get(SESSION)!.ended).toBeNull();
    live.close();
  });

  it('ends access at once on logoff, and applying the same events twice changes nothing', async () => {
    const { clock, live, cuts, watch } = table();
    const activated = event('session.activated', { startedAt: clock.now(), cutoffAt: clock.now() + 60_000, cutoffReason: 'time_limit' });
    live.apply([activated, activated]);
    watch();
    const loggedOff = event('session.logged_off', { reason: 'logoff', endedAt: clock.now() + 1000, chargeMicros: '10' });
    live.apply([loggedOff]);
    live.apply([loggedOff]);
    expect(cuts).toEqual([{ reason: 'logoff', at: clock.now() + 1000 }]);
    clock.advance(60_000);
    await tick();
    expect(cuts).toHaveLength(1);
    live.close();
  });
});
