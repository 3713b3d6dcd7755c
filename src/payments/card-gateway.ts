import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import type { Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { createCardNetworkClient } from './card-network-client.js';
import type { CardGateway } from './gateway.js';
import { startCardNetwork } from './sandbox/start.js';

export interface RunningGateway {
  gateway: CardGateway;
  /** The sandbox's address when tollgate talks to one; null with Stripe. */
  cardNetworkUrl: string | null;
  close(): Promise<void>;
}

/**
 * The card company configuration chooses: Stripe, a card-network sandbox elsewhere
 * (CARD_NETWORK_URL), or the sandbox started in this process on the same database.
 */
export async function startCardGateway(config: Config, deps: { sql: Sql; clock: Clock; log: Logger | false }): Promise<RunningGateway> {
  if (config.cardGateway === 'stripe') {
    // Loaded only when chosen: the Stripe SDK is a sizeable part of a process's baseline memory.
    const { createStripeGateway } = await import('./stripe-gateway.js');
    const stripe = config.stripe!;
    const gateway = createStripeGateway({
      apiKey: stripe.apiKey,
      ...(stripe.host !== undefined && { host: stripe.host }),
      ...(stripe.port !== undefined && { port: stripe.port }),
      ...(stripe.protocol !== undefined && { protocol: stripe.protocol }),
      timeoutMs: config.cardNetworkTimeoutMs,
    });
    if (deps.log) deps.log.info({ host: stripe.host ?? 'api.stripe.com' }, 'card gateway: Stripe');
    return { gateway, cardNetworkUrl: null, close: async () => {} };
  }
  let url = config.cardNetworkUrl;
  let close = async () => {};
  if (!url) {
    const sandbox = await startCardNetwork({
      sql: deps.sql,
      clock: deps.clock,
      port: config.cardNetworkPort,
      holdValidityMs: config.cardNetworkHoldValidityMs,
      faultsToken: config.cardNetworkFaultsToken,
      logger: false,
    });
    url = sandbox.url;
    close = sandbox.close;
    if (deps.log) deps.log.info({ url }, 'card-network sandbox started in-process');
  }
  const gateway = createCardNetworkClient({
    baseUrl: url,
    timeoutMs: config.cardNetworkTimeoutMs,
    maxAttempts: config.cardNetworkMaxAttempts,
    backoffBaseMs: config.cardNetworkBackoffBaseMs,
    backoffMaxMs: config.cardNetworkBackoffMaxMs,
  });
  const closeSandbox = close;
  return {
    gateway,
    cardNetworkUrl: url,
    close: async () => {
      await gateway.close();
      await closeSandbox();
    },
  };
}
