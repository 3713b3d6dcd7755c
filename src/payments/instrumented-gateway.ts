import type { Metrics } from '../observability/metrics.js';
import { CardDeclinedError, type CardGateway } from './gateway.js';

type Operation = keyof CardGateway;

/** Times every call to the card company and counts its outcome, whatever the gateway. */
export function instrumentGateway(gateway: CardGateway, metrics: Metrics): CardGateway {
  const timed =
    <A extends unknown[], R>(operation: Operation, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const stop = metrics.cardNetworkLatency.startTimer({ operation });
      try {
        const result = await call(...args);
        stop({ outcome: 'ok' });
        return result;
      } catch (error) {
        stop({ outcome: error instanceof CardDeclinedError ? 'declined' : 'error' });
        throw error;
      }
    };
  return {
    tokenize: timed('tokenize', gateway.tokenize.bind(gateway)),
    authorize: timed('authorize', gateway.authorize.bind(gateway)),
    increment: timed('increment', gateway.increment.bind(gateway)),
    capture: timed('capture', gateway.capture.bind(gateway)),
    void: timed('void', gateway.void.bind(gateway)),
    refund: timed('refund', gateway.refund.bind(gateway)),
    listOpenHolds: timed('listOpenHolds', gateway.listOpenHolds.bind(gateway)),
  };
}
