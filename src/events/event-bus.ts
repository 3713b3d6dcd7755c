import type { Logger } from '../logger.js';
import type { StoredEvent } from './event-store.js';

export type EventHandler = (events: readonly StoredEvent[]) => void;

/**
 * In-process delivery of domain events once their transaction has committed (DESIGN rule 14):
 * the journal publishes each commit's events in position order; the edge, live pages and
 * durable consumers listen here. A handler that throws is logged and does not stop the others.
 */
export class EventBus {
  private readonly handlers = new Set<EventHandler>();

  constructor(private readonly log: Logger) {}

  subscribe(handler: EventHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  publish(events: readonly StoredEvent[]): void {
    if (events.length === 0) return;
    for (const handler of this.handlers) {
      try {
        handler(events);
      } catch (error) {
        this.log.error({ err: error }, 'a domain event handler failed');
      }
    }
  }
}
