import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_EVENTS, Timeline } from '../../harness/lab/timeline.js';
import type { LabEvent } from '../../simulators/common/events.js';

const ev = (time: number, type = 'connection', source = 'proxy'): LabEvent => ({
  time,
  source,
  type,
  data: { id: time },
});

describe('Timeline', () => {
  it('holds at most maxEvents, dropping the oldest, and counts what it dropped', () => {
    const t = new Timeline({ maxEvents: 100 });
    for (let i = 0; i < 25_000; i++) t.add(ev(i));
    expect(t.size).toBe(100);
    expect(t.dropped).toBe(24_900);
    const held = t.all();
    expect(held).toHaveLength(100);
    expect(held[0]?.time).toBe(24_900);
    expect(held.at(-1)?.time).toBe(24_999);
  });

  it('drops routine events before the ones a run keeps, and reads both back in arrival order', () => {
    const t = new Timeline({ maxEvents: 10, keep: (e) => e.type === 'connect-denied' });
    t.add(ev(1, 'connect-denied'));
    for (let i = 2; i < 1000; i++) t.add(ev(i));
    t.add(ev(1000, 'connect-denied'));
    t.add(ev(1001));
    const held = t.all();
    expect(held).toHaveLength(10);
    // The denial from the start survives 998 routine events; the newest routine ones are there too.
    expect(held[0]).toMatchObject({ time: 1, type: 'connect-denied' });
    expect(held.map((e) => e.time)).toEqual([1, 993, 994, 995, 996, 997, 998, 999, 1000, 1001]);
    expect(t.dropped).toBe(991);
  });

  it('drops kept events too once they alone fill it (oldest first)', () => {
    const t = new Timeline({ maxEvents: 3, keep: () => true });
    for (let i = 0; i < 5; i++) t.add(ev(i, 'tls-client-error'));
    expect(t.all().map((e) => e.time)).toEqual([2, 3, 4]);
    expect(t.dropped).toBe(2);
  });

  it('counts the dropped events of a window apart from older ones', () => {
    const t = new Timeline({ maxEvents: 5 });
    for (let i = 0; i < 4; i++) t.add(ev(i)); // the lab's start
    t.openWindow(100);
    for (let i = 100; i < 103; i++) t.add(ev(i));
    // Two start events left to make room: not the window's.
    expect(t.dropped).toBe(2);
    expect(t.droppedInWindow).toBe(0);
    for (let i = 103; i < 110; i++) t.add(ev(i));
    expect(t.droppedInWindow).toBe(5);
    expect(t.since(100).map((e) => e.time)).toEqual([105, 106, 107, 108, 109]);
  });

  it('has a default bound, and refuses a bound that is not a whole number ≥ 1', () => {
    expect(new Timeline().maxEvents).toBe(DEFAULT_MAX_EVENTS);
    expect(() => new Timeline({ maxEvents: 0 })).toThrow(expect.objectContaining({ code: 'E_BAD_OPTION' }));
    expect(() => new Timeline({ maxEvents: 1.5 })).toThrow(/maxEvents/);
  });
});
